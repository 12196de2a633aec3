"""Turn per-prompt estimates into one result row with bootstrap intervals over prompts.

Gains are paired: each prompt's estimate minus the same prompt's base-policy mean, so the
between-prompt spread of utility does not widen the gain's interval. The per-prompt arrays
travel with the row under PER_PROMPT (the point's record saves them to per_prompt.npz) so
that reports can compare points paired on the same prompts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from goodhart.eval import metrics as M
from goodhart.eval.bootstrap import interval, resample_indices
from goodhart.pipeline.config.schema import RunConfig

PER_PROMPT = "per_prompt"  # row key of the per-prompt arrays; popped and saved by the point's record


def summarize(
    cfg: RunConfig,
    proxy: np.ndarray,
    utility: np.ndarray,
    kl: np.ndarray,
    base_proxy: np.ndarray,
    base_utility: np.ndarray,
    kl_estimator: str,
) -> dict[str, Any]:
    """All arguments but cfg and kl_estimator are per-prompt arrays of shape (P,)."""
    P = proxy.shape[0]
    method = cfg.eval.interval if cfg.eval.bootstrap else "none"  # bootstrap=0: no intervals
    idx = resample_indices(P, cfg.eval.bootstrap, cfg.seed) if method == "bootstrap" else None
    row: dict[str, Any] = {}
    for name, per in (
        (M.PROXY, proxy),
        (M.UTILITY, utility),
        (M.GAIN_PROXY, proxy - base_proxy),
        (M.GAIN_UTILITY, utility - base_utility),
        (M.KL, kl),
    ):
        row[name], row[M.lo(name)], row[M.hi(name)] = interval(per, method, cfg.eval.ci, idx)
    row[M.ERROR] = row[M.PROXY] - row[M.UTILITY]
    row[M.BASE_PROXY] = float(np.mean(base_proxy))
    row[M.BASE_UTILITY] = float(np.mean(base_utility))
    row[M.KL_ESTIMATOR] = kl_estimator
    row[M.N_PROMPTS] = int(P)
    row[M.INTERVAL_METHOD] = method
    row[PER_PROMPT] = {
        "proxy": np.asarray(proxy, dtype=np.float64),
        "utility": np.asarray(utility, dtype=np.float64),
        "base_proxy": np.asarray(base_proxy, dtype=np.float64),
        "base_utility": np.asarray(base_utility, dtype=np.float64),
        "kl": np.asarray(kl, dtype=np.float64),
    }
    return row


def base_share2(proxy: np.ndarray, utility: np.ndarray) -> float:
    """Utility share of the proxy gain under the gentlest selection, best-of-2 on the base pool
    (shape (P, N)): sum over prompts of gain(utility) / sum of gain(proxy), exact from the pool.
    The reference against which a collapsed share (the catastrophic signature) is judged; nan
    when best-of-2 gains no proxy (a constant proxy)."""
    from goodhart.eval.bon import best_of_n

    if proxy.shape[-1] < 2:
        return float("nan")
    est = best_of_n(proxy, 2, utility=utility)
    gp = float(np.mean(est["proxy"] - proxy.mean(-1)))
    gu = float(np.mean(est["utility"] - utility.mean(-1)))
    return gu / gp if gp > 0 else float("nan")


def error_utility_corr(error: np.ndarray, utility: np.ndarray) -> float:
    """Pearson correlation of error and utility over all base samples (nan if either is constant)."""
    e, u = np.ravel(error), np.ravel(utility)
    if e.std() == 0 or u.std() == 0:
        return float("nan")
    return float(np.corrcoef(e, u)[0, 1])


@dataclass
class PointOutput:
    """What an optimizer returns: its result row and a few example completions."""

    row: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)


StepLogger = Callable[[dict[str, float], int], None]
