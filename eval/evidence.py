"""The statistics a verdict reads: an estimate with its interval and standard error, from
per-prompt units (paired, t over units) or from a stored interval; differences of two; one-sided
p-values. Pure numpy/scipy; eval/goodhart.py builds its labels from these.

A missing interval is never zero-width: an estimate over fewer than 2 units has an infinite
interval (se = inf, `missing`), unless its row is flagged exact by the column M.EXACT (a quantity
computed, not sampled), which alone is taken at face value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special  # t.ppf is stdtrit, t.sf(z) stdtr(df, -z), norm.sf(z) ndtr(-z): bit for bit

from goodhart.eval import metrics as M

INF = float("inf")
NAN = float("nan")
STORED_CI = 0.95  # the level of a stored interval whose row does not say (M.CI_LEVEL): eval.ci's default


@dataclass(frozen=True)
class Stat:
    """An estimate m with the interval [lo, hi] at the rule's level, its standard error and the
    degrees of freedom of its t distribution (inf: normal)."""

    m: float
    lo: float
    hi: float
    se: float
    df: float = INF
    units: int = 0
    """How many independent units (prompts, (seed, prompt) pairs) it rests on (0: unknown)."""

    @property
    def missing(self) -> bool:
        """No interval: a sampled estimate over fewer than 2 units (or no estimate at all)."""
        return not math.isfinite(self.se) or math.isnan(self.m)

    @property
    def est(self) -> tuple[float, float, float]:
        return self.m, self.lo, self.hi


NAN_STAT = Stat(NAN, NAN, NAN, NAN, NAN)


def f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return NAN


def quantile(ci: float, df: float) -> float:
    """The two-sided `ci` quantile of t(df) (normal when df is inf or unknown)."""
    a = 0.5 + ci / 2
    return float(special.stdtrit(df, a)) if math.isfinite(df) and df >= 1 else float(special.ndtri(a))


def from_units(x: np.ndarray, ci: float) -> Stat:
    """Mean over units with its t interval; fewer than 2 units: an infinite interval."""
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return NAN_STAT
    m = float(x.mean())
    if x.size < 2:
        return Stat(m, -INF, INF, INF, NAN, int(x.size))
    se = float(x.std(ddof=1) / math.sqrt(x.size))
    q = quantile(ci, x.size - 1)
    return Stat(m, m - q * se, m + q * se, se, float(x.size - 1), int(x.size))


def is_exact(r: Any) -> bool:
    v = r.get(M.EXACT) if hasattr(r, "get") else None
    return v in (True, "True", 1, "true") or (isinstance(v, (float, np.floating)) and v == 1.0)


def from_row(r: Any, name: str, ci: float, units: int = 0) -> Stat:
    """The row's `name` with its stored interval rescaled to level `ci` (the stored level is the
    row's M.CI_LEVEL, else 0.95; t quantiles over M.N_PROMPTS - 1 degrees of freedom when known).
    NaN bounds: an infinite interval, unless the row is flagged exact (M.EXACT)."""
    m = f(r.get(name))
    lo, hi = f(r.get(M.lo(name))), f(r.get(M.hi(name)))
    n_prompts = f(r.get(M.N_PROMPTS))
    n = units or (int(n_prompts) if not math.isnan(n_prompts) else 0)
    df = f(r.get("_df"))
    if math.isnan(df):
        df = float(n - 1) if n and n >= 2 else INF
    if math.isnan(lo) or math.isnan(hi):
        if is_exact(r):
            return Stat(m, m, m, 0.0, INF, n)
        return Stat(m, -INF, INF, INF, NAN, n)
    ci_s = f(r.get(M.CI_LEVEL))
    ci_s = STORED_CI if math.isnan(ci_s) else ci_s
    qs, qr = quantile(ci_s, df), quantile(ci, df)
    se = (hi - lo) / (2 * qs)
    if ci_s == ci:
        return Stat(m, lo, hi, se, df, n)
    return Stat(m, m - (m - lo) * qr / qs, m + (hi - m) * qr / qs, se, df, n)


def difference(a: Stat, b: Stat, ci: float) -> Stat:
    """a - b from two independent estimates (normal approximation)."""
    d = a.m - b.m
    se = math.hypot(a.se, b.se)
    if not math.isfinite(se):
        return Stat(d, -INF, INF, INF, NAN)
    q = quantile(ci, INF)
    return Stat(d, d - q * se, d + q * se, se, INF)


def p_above(s: Stat, c: float = 0.0) -> float:
    """One-sided p-value of the claim `mean > c`."""
    if s.missing:
        return NAN
    if s.se == 0:
        return 0.0 if s.m > c else 1.0
    z = (s.m - c) / s.se
    return float(special.stdtr(s.df, -z) if math.isfinite(s.df) and s.df >= 1 else special.ndtr(-z))


def p_below(s: Stat, c: float = 0.0) -> float:
    """One-sided p-value of the claim `mean < c`."""
    if s.missing:
        return NAN
    if s.se == 0:
        return 0.0 if s.m < c else 1.0
    z = (c - s.m) / s.se
    return float(special.stdtr(s.df, -z) if math.isfinite(s.df) and s.df >= 1 else special.ndtr(-z))


# ---- the numbers of a label, as `why` prints them ----------------------------------------------
def is_nan(v: Any) -> bool:
    return math.isnan(f(v))


def fmt(x: float) -> str:
    """3 significant digits; inf spelt out; '-' for a missing number."""
    if not is_nan(x) and math.isinf(f(x)):
        return "inf" if x > 0 else "-inf"
    return "-" if is_nan(x) else f"{x:.3g}"


def interval_text(m: float, lo: float, hi: float) -> str:
    return fmt(m) if is_nan(lo) else f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"


def knob_text(r: Any) -> str:
    """`bon n=64`, `tilt kl.coef=0.5`: an optimizer and its knob."""
    x = f(r.get("x"))
    algo = str(r.get("algo", ""))
    return f"{algo} {M.knob_label(str(r.get('x_name', '')), x)}" if not math.isnan(x) else algo
