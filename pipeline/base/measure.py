"""Turn per-prompt estimates into one result row with bootstrap intervals over prompts.

Gains are paired: each prompt's estimate minus the same prompt's base-policy mean, so the
between-prompt spread of utility does not widen the gain's interval."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from goodhart.eval import metrics as M
from goodhart.eval.bootstrap import mean_ci, resample_indices
from goodhart.pipeline.config.schema import RunConfig


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
    idx = resample_indices(P, cfg.eval.bootstrap, cfg.seed) if cfg.eval.bootstrap else None
    row: dict[str, Any] = {}
    for name, per in (
        (M.PROXY, proxy),
        (M.UTILITY, utility),
        (M.GAIN_PROXY, proxy - base_proxy),
        (M.GAIN_UTILITY, utility - base_utility),
        (M.KL, kl),
    ):
        row[name], row[M.lo(name)], row[M.hi(name)] = mean_ci(per, idx, cfg.eval.ci)
    row[M.ERROR] = row[M.PROXY] - row[M.UTILITY]
    row[M.BASE_PROXY] = float(np.mean(base_proxy))
    row[M.BASE_UTILITY] = float(np.mean(base_utility))
    row[M.KL_ESTIMATOR] = kl_estimator
    row[M.N_PROMPTS] = int(P)
    return row


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
