"""Clusters: SLURM job-array submission and status (slurm, submit) and the lean MLflow tracking
server (server).

Imports: sweeps, config, errors, io.
"""
