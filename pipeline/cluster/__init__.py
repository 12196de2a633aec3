"""Clusters: SLURM job-array submission and status (slurm, submit) and the lean MLflow tracking
server (server). May import sweeps/, train/ (the requeue exit code), config/, io, errors."""
