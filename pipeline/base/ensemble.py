"""Reward-side mitigations on the base pool (issue 20, the arena): a distributional proxy made an
ensemble of k members and/or transformed, and the ensemble members' gains as the alarm's
disagreement evidence.

A distributional transform is anchored at the pool's own raw proxy (the pool *is* a sample of
the base policy); a text proxy's at the train prompts' calibration samples (pool.calibrate)."""

from __future__ import annotations

from typing import Any

import numpy as np

from goodhart.pipeline.config import schema as C
from goodhart.pipeline.io import short_hash


def mitigated_distributional(cfg: C.RunConfig, arr: dict[str, np.ndarray], key: str):
    """The Pool of a distributional proxy with an ensemble and/or a transform; `arr` is the single
    proxy's draw (V and member 0's error)."""
    from goodhart.pipeline.base.pool import Pool, cached_draw
    from goodhart.pipeline.base.scoring import law, proxy_transform
    from goodhart.rewards.base import check_array
    from goodhart.rewards.ensemble import combine

    r = cfg.reward
    assert isinstance(r, C.DistributionalReward)
    P, n = arr["proxy"].shape
    utility, proxy, members = arr["utility"], arr["proxy"], None
    if r.ensemble is not None:
        ens = cached_draw(law(r.utility), law(r.error), P, n, cfg.seed, r.ensemble.k)
        members = check_array("distributional ensemble members", ens["members"])
        proxy = combine(members, r.ensemble.combine, r.ensemble.lam)
    tstate = None
    t = proxy_transform(r)
    if t is not None:
        proxy = t.fit(proxy)(proxy)
        tstate = t.state()
    key = short_hash({"base": key, "transform": tstate})
    return Pool(None, None, proxy, utility, proxy - utility, key, members=members, transform=tstate)


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
