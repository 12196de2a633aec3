"""The `goodhart` command: parse arguments, call engine functions, print tables. main.py holds
the parser and the local verbs (prepare, config, run, sweep, status, report, run-point, ui); one
module per other verb group, each with add_verbs(subparsers): tails, cluster (SLURM sweeps and
the tracking server), probe, alarm (alarm-eval, alarm-bench), export, train_rm, analyze
(`goodhart analyze SAMPLES`), holdout (holdout-eval, holdout-bench); argtypes holds the argparse types they share (checked ranges,
ports, counts). No orchestration of its own; nothing imports this room.

Imports: report, cluster, sweeps, probe, train, base, config, errors, io, goodhart.eval.
"""
