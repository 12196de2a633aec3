"""Error control for many tests and repeated looks: Holm along a curve, alpha spending over rounds.

Holm (1979) step-down: with m hypotheses and p-values sorted p_(1) <= ... <= p_(m), reject H_(1),
..., H_(j) while p_(j) <= alpha / (m - j + 1), stop at the first that is not. It controls the
family-wise error rate (the chance of any false rejection among the m) at alpha for any
dependence between the tests, which matters here: the points of one curve share a pool.

Alpha spending (Lan & DeMets 1983): a planned budget of K looks at growing data, information
fractions 0 < t_1 < ... < t_K = 1, and a spending function alpha(t) (increasing, alpha(0) = 0,
alpha(1) = alpha). Look k may spend alpha(t_k) - alpha(t_{k-1}). We spend each increment by a
union bound (Bonferroni across looks): the chance of a false claim at ANY look is at most the
sum of the increments, alpha, whatever the correlation between looks (exact group-sequential
boundaries would exploit that correlation and be slightly less conservative). Two shapes:

    O'Brien-Fleming type   alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))   (spends little early)
    Pocock type            alpha(t) = alpha ln(1 + (e - 1) t)                 (spends evenly)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special  # norm.ppf is ndtri, norm.isf -ndtri, norm.cdf ndtr: bit for bit

SPENDING = ("obrien_fleming", "pocock")


def holm(pvalues, alpha: float) -> np.ndarray:
    """Which hypotheses Holm's step-down rejects at family-wise level alpha (NaN p-values are
    never rejected and do not count in m)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.zeros(p.shape, dtype=bool)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    for j, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        if p[i] > alpha / (m - j):
            break
        out[i] = True
    return out


def holm_adjusted(pvalues) -> np.ndarray:
    """Holm-adjusted p-values: max over the smaller ones of min(1, (m - j + 1) p_(j)); a
    hypothesis is rejected at level alpha iff its adjusted p-value is <= alpha."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    run = 0.0
    for j, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        run = max(run, min(1.0, (m - j) * p[i]))
        out[i] = run
    return out


def spent(t: float, alpha: float, kind: str = "obrien_fleming") -> float:
    """Cumulative alpha the spending function allows by information fraction t in [0, 1]."""
    if kind not in SPENDING:
        raise ValueError(f"spending must be one of {SPENDING}, got {kind!r}")
    t = min(max(float(t), 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if kind == "pocock":
        return alpha * math.log(1.0 + (math.e - 1.0) * t)
    return float(2.0 - 2.0 * special.ndtr(-special.ndtri(alpha / 2) / math.sqrt(t)))


def look_alphas(fractions, alpha: float, kind: str = "obrien_fleming") -> list[float]:
    """The alpha each look spends: alpha(t_k) - alpha(t_{k-1}) for the planned information
    fractions t_1 < ... < t_K (the last is taken as 1). They sum to alpha."""
    t = [float(x) for x in fractions]
    if not t or any(b <= a for a, b in zip(t, t[1:])) or t[0] <= 0:
        raise ValueError(f"information fractions must increase from > 0, got {t}")
    t = [x / t[-1] for x in t]
    cum = [spent(x, alpha, kind) for x in t]
    return [c - p for c, p in zip(cum, [0.0, *cum[:-1]])]


def need_factor(effect: float, se: float, alpha_one_sided: float, power: float, units: int = 0) -> float:
    """By what factor the units (prompts, or samples where the variance falls like 1/samples)
    must grow for a one-sided test of an effect this large, now seen with standard error se, to
    pass at level alpha_one_sided with probability `power`: ((q_alpha + z_power) se / effect)^2,
    q_alpha the normal quantile, or (given the `units` now) the t quantile at the grown number of
    units (a fixed point: with few units a tiny alpha's t quantile is far beyond the normal's).
    inf when the effect is not on the side of the claim (effect <= 0) or se is unknown."""
    if not (math.isfinite(effect) and math.isfinite(se)) or effect <= 0:
        return math.inf
    if se == 0:
        return 0.0
    zp = special.ndtri(power)
    base = float(((-special.ndtri(alpha_one_sided) + zp) * se / effect) ** 2)
    if units < 2:
        return base

    def gap(logf: float) -> float:  # increasing in f: f minus what f units' t quantile asks for
        f = math.exp(logf)
        df = max(units * f - 1.0, 1.0)
        # stats.t.isf(alpha, df) is -stdtrit(df, alpha) bit for bit, without rv_continuous's
        # argument handling (~100 us a call; the bisection calls it ~85 times per claim)
        return logf - math.log(((-special.stdtrit(df, alpha_one_sided) + zp) * se / effect) ** 2)

    lo, hi = math.log(base) - 1.0, math.log(max(base, 1.0 / units)) + 1.0
    while gap(hi) < 0:
        hi += 2.0
    while gap(lo) > 0:
        lo -= 2.0
    for _ in range(80):  # bisection on log f: the t quantile shrinks as the units grow
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    f = math.exp(hi)
    return f
