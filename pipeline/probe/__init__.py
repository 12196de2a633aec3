"""Reward-model tail probe (`goodhart probe`): how far a reward's tail reaches. The three modes
(run: random token sequences, base-model completions, ACG optimization) and the entry point
that runs one and records it in MLflow (engine); the probe's typed config (config); an HF
reward seen at the token level, scores and one-hot gradients (token_rm); the coordinate-
gradient search (acg); what an optimized sequence is worth, with the KL / reward trade-off of
mixing it into the base policy (optimize, using logprob: log pi_0 of a text); the probe
directory's report (report).

Imports: train (the completion slice and token log-probs of train/kl.py), base, config, errors,
io, goodhart.rewards, goodhart.eval.
"""

MODES: tuple[str, ...] = ("random", "base", "optimize")
"""The probe's modes (here, not in config.py: the CLI lists them without importing pydantic)."""
