"""goodhart.pipeline: one job end to end (config -> base model -> optimizer -> results), sweeps
of them, and the command line. The only package that calls goodhart.rewards and goodhart.eval.

Rooms, with imports running down this list only (tests/test_layout.py holds the order):
    cli/         parse, call an engine function, print (nothing imports the CLI)
    report/      reading a finished sweep: verdict tables, report.md/html, the alarm and its scoring,
                 `goodhart analyze` (any run's per-sample file read as a sweep)
    cluster/     SLURM submission and status, the MLflow tracking server
    sweeps/      sweep spec, one invocation (invoke), local runner, a point's record, tables
    probe/       reward-model tail probe: random / base scoring, ACG search, mixture KL, its report
    optimizers/  one file per optimizer: tilt, bon, ppo, rloo, grpo, bon-ft
    train/       machinery shared by trained optimizers: policy, rollout, KL, checkpoints, preemption,
                 the online alarm; reward-model training (train-rm); export of a trained policy
    base/        the base policy and its data: models, tiny model, corpus, prompts, sampling, pool, scores
    config/      the typed config tree, its loader, the SLURM settings (imported by every room)
Beside them: errors.py (user mistakes), io.py (atomic files, cache dir, hashes), and api/: not a
room but the package top, `import goodhart` (the public API) and goodhart.integrations (the TRL
callback), installed from here; it may import every room, and no room imports it.
"""
