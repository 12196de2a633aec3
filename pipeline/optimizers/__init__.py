"""Optimizers: one file each. Every one takes a PointContext and returns a PointOutput whose
row holds the same columns (eval.metrics), so tilt, best-of-n and trained policies line up
on one KL axis."""

from __future__ import annotations

from typing import Callable

from pipeline.measure import PointOutput


def get(kind: str) -> Callable[..., PointOutput]:
    if kind == "tilt":
        from pipeline.optimizers.tilt import run
    elif kind == "bon":
        from pipeline.optimizers.bon import run
    elif kind == "ppo":
        from pipeline.optimizers.ppo import run
    elif kind == "rloo":
        from pipeline.optimizers.rloo import run
    elif kind == "grpo":
        from pipeline.optimizers.grpo import run
    elif kind == "bon-ft":
        from pipeline.optimizers.bon_ft import run
    else:
        raise KeyError(f"no optimizer '{kind}'")
    return run
