"""Reward-side mitigations on the base pool (issue 20, the arena): a distributional proxy made an
ensemble of k members and/or transformed, and the ensemble members' gains as the alarm's
disagreement evidence.

A distributional transform is anchored at the pool's own raw proxy (the pool *is* a sample of
the base policy); a text proxy's at the train prompts' calibration samples (pool.calibrate)."""

from __future__ import annotations

from typing import Any

import numpy as np


def member_evidence(pool: Any, weights: np.ndarray) -> dict[str, tuple[np.ndarray, Any]] | None:
    """For eval.alarm.alarm's `others`: each member's policy mean under the pool weights (rows
    summing to 1), per prompt as a (P, 1) array, with that member's own base statistics. None
    for a single proxy."""
    members = getattr(pool, "members", None)
    if members is None:
        return None
    from goodhart.eval.alarm import BaseStats

    out = {}
    for j, m in enumerate(members):
        out[f"member{j}"] = (np.sum(weights * m, axis=-1, keepdims=True), BaseStats.from_pool(m))
    return out
