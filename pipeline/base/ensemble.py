"""Reward-side mitigations on the base pool (the arena): a distributional proxy made an
ensemble of k members and/or transformed, and the ensemble members' gains as the alarm's
disagreement evidence; and the alarm's base statistics of a pool's arrays (its light-tailed
null included), computed once per process and reused by every point of a sweep on that pool.

A distributional transform is anchored at the pool's own raw proxy (the pool *is* a sample of
the base policy); a text proxy's at the train prompts' calibration samples (pool.calibrate)."""

from __future__ import annotations

from typing import Any

import numpy as np


def base_stats(proxy: np.ndarray, rule: Any = None) -> Any:
    """eval.alarm.BaseStats of the pool, with the null replicates of `rule` (an AlarmRule; None:
    none, as the ensemble members' bases need), once per process for the same pool
    (pipeline/base/pool.py pool_memo): the statistics depend on the base pool only, not on the
    knob, so every point of a curve shares them."""
    from goodhart.eval.alarm import BaseStats
    from goodhart.pipeline.base.pool import pool_memo

    n_null, seed = (rule.n_null, rule.null_seed) if rule is not None else (0, 0)
    return pool_memo(BaseStats.from_pool, np.asarray(proxy, dtype=np.float64), n_null=n_null, null_seed=seed)


def member_evidence(pool: Any, weights: np.ndarray) -> dict[str, tuple[np.ndarray, Any]] | None:
    """For eval.alarm.alarm's `others`: each member's policy mean under the pool weights (rows
    summing to 1), per prompt as a (P, 1) array, with that member's own base statistics. None
    for a single proxy."""
    members = getattr(pool, "members", None)
    if members is None:
        return None
    out = {}
    for j, m in enumerate(members):
        out[f"member{j}"] = (np.sum(weights * m, axis=-1, keepdims=True), base_stats(m))
    return out
