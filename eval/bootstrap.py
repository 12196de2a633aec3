"""Intervals for a mean over independent units (prompts, or (seed, prompt) pairs).

The units are the independent draws; the samples within one prompt are already averaged into
that prompt's estimate and are not resampled.

Two methods:

* ``t`` (the default): mean +- t_{P-1, (1+ci)/2} * sd / sqrt(P). With few units a percentile
  bootstrap undercovers (it is the plug-in interval, too narrow by about sqrt((P-1)/P) and by
  t-vs-z; at P = 8 nominal 95% covered ~87% in distributional sweeps), while the t interval
  is exact for normal unit means and covers 93-97% on this project's estimates at P >= 16
  (tests/test_coverage.py measures it against numerically exact values).
* ``bootstrap``: the percentile bootstrap over units, kept for comparison.

Paired comparisons (point A minus point B on the same units) are the same interval on the
per-unit differences: the between-prompt spread cancels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

NAN3 = (float("nan"), float("nan"), float("nan"))


def resample_indices(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_units) indices drawn with replacement; share them across metrics so
    intervals of a difference and of its parts come from the same resamples."""
    return np.random.default_rng(seed).integers(0, n_units, size=(n_boot, n_units))


def mean_ci(per_unit: np.ndarray, idx: np.ndarray | None, ci: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi) of the mean over units by the percentile bootstrap; lo = hi = nan without resamples."""
    x = np.asarray(per_unit, dtype=np.float64)
    m = float(np.mean(x))
    if idx is None or idx.size == 0 or x.size < 2:
        return m, float("nan"), float("nan")
    means = x[idx].mean(axis=1)
    a = (1 - ci) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return m, float(lo), float(hi)


def t_ci(per_unit: np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval of the mean over units (nan bounds with < 2 units)."""
    x = np.asarray(per_unit, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return NAN3
    m = float(np.mean(x))
    if x.size < 2:
        return m, float("nan"), float("nan")
    # special.stdtrit(df, q) is stats.t.ppf(q, df) bit for bit, ~50x cheaper a call (a verdict
    # table computes thousands of these intervals)
    half = float(special.stdtrit(x.size - 1, (1 + ci) / 2) * np.std(x, ddof=1) / np.sqrt(x.size))
    return m, m - half, m + half


def interval(per_unit: np.ndarray, method: str, ci: float = 0.95, idx: np.ndarray | None = None):
    """(mean, lo, hi) by `method` ("t" or "bootstrap", which needs `idx`); "none": no bounds."""
    if method == "t":
        return t_ci(per_unit, ci)
    if method == "bootstrap":
        return mean_ci(per_unit, idx, ci)
    return float(np.mean(per_unit)), float("nan"), float("nan")


def ratio_ci(num: np.ndarray, den: np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    """(mean(num)/mean(den), lo, hi) by the delta method over paired units (Fieller-free: fine
    while mean(den) is many standard errors from 0, which is when a ratio means anything)."""
    a, b = np.asarray(num, dtype=np.float64).ravel(), np.asarray(den, dtype=np.float64).ravel()
    ma, mb = float(a.mean()), float(b.mean())
    if mb == 0:
        return NAN3
    r = ma / mb
    if a.size < 2:
        return r, float("nan"), float("nan")
    # Linearisation: r's per-unit influence is (a - r b) / mb.
    return (r, *t_ci((a - r * b) / mb + r, ci)[1:])


def sign_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly (integer sums, one correctly rounded division):
    a sign test's one-sided p-value for k of n signs positive (the other side: sign_tail(n - k, n))."""
    if k <= 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n
