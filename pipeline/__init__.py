"""goodhart.pipeline: one job end to end (config -> base model -> optimizer -> results), sweeps
of them, and the command line. The only package that calls goodhart.rewards and goodhart.eval.

Rooms, with imports running down this list only:
    cli/         parse, call an engine function, print (nothing imports the CLI)
    cluster/     SLURM submission and status, the MLflow tracking server
    report/      reading a finished sweep: verdict tables, report.md/html, the alarm and its scoring
    sweeps/      sweep spec, one invocation (invoke), local runner, a point's record, tables
    optimizers/  one file per optimizer: tilt, bon, ppo, rloo, grpo, bon-ft
    train/       machinery shared by trained optimizers: policy, rollout, KL, checkpoints, preemption
    base/        the base policy and its data: models, tiny model, corpus, prompts, sampling, pool, scores
    config/      the typed config tree, its loader, the SLURM settings (imported by every room)
Beside them: errors.py (user mistakes), io.py (atomic files, cache dir, hashes).
"""
