"""Optimizers: one file each. Every one takes a PointContext and returns a PointOutput whose
row holds the same columns (eval.metrics), so tilt, best-of-n and trained policies line up
on one KL axis: tilt and bon (reweighting and best-of-n on the base pool, closed-form KL), ppo
(our own PPO), bon_ft (fine-tuning on best-of-n samples), rloo and grpo (TRL's trainers, glued
to the pipeline by trl_common). `get(kind)` maps algo.kind to a module's `run`.

Imports: train, base, goodhart.eval.
"""

from __future__ import annotations

from collections.abc import Callable

from goodhart.pipeline.base.measure import PointOutput


def get(kind: str) -> Callable[..., PointOutput]:
    if kind == "tilt":
        from goodhart.pipeline.optimizers.tilt import run
    elif kind == "bon":
        from goodhart.pipeline.optimizers.bon import run
    elif kind == "ppo":
        from goodhart.pipeline.optimizers.ppo import run
    elif kind == "rloo":
        from goodhart.pipeline.optimizers.rloo import run
    elif kind == "grpo":
        from goodhart.pipeline.optimizers.grpo import run
    elif kind == "bon-ft":
        from goodhart.pipeline.optimizers.bon_ft import run
    else:
        raise KeyError(f"no optimizer '{kind}'")
    return run
