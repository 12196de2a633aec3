"""The typed config tree (schema), its loader with composition and dotted overrides (load), and
the SLURM settings of a sweep file (slurm). Imports nothing of the pipeline but errors."""
