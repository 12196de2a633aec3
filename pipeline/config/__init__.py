"""The typed config tree (schema), its loader with composition and dotted overrides (load), the
SLURM settings of a sweep file (slurm), and the config of `goodhart train-rm` (reward_model).

Imports: goodhart.eval (the alarm's rule, built from its config keys), errors.
"""
