"""Percentile bootstrap over prompts: prompts are the independent units; the samples within
one prompt are not resampled (they are already averaged into that prompt's estimate)."""

from __future__ import annotations

import numpy as np


def resample_indices(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_units) indices drawn with replacement; share them across metrics so
    intervals of a difference and of its parts come from the same resamples."""
    return np.random.default_rng(seed).integers(0, n_units, size=(n_boot, n_units))


def mean_ci(per_unit: np.ndarray, idx: np.ndarray | None, ci: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi) of the mean over units; lo = hi = nan without resamples."""
    x = np.asarray(per_unit, dtype=np.float64)
    m = float(np.mean(x))
    if idx is None or idx.size == 0 or x.size < 2:
        return m, float("nan"), float("nan")
    means = x[idx].mean(axis=1)
    a = (1 - ci) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return m, float(lo), float(hi)
