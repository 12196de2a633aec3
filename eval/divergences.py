"""Exact f-divergence-regularised optima on a pool of base samples.

For one prompt with base samples y_1..y_N ~ pi_0 and proxy r_i, the optimum of

    max_pi  E_pi[r] - coef * D_f(pi || pi_0),      D_f = E_pi0[f(pi / pi0)],  f convex, f(1) = 0,

put on the pool as weights w_i = pi(y_i) / pi_0(y_i) (mean(w) = 1), satisfies the KKT condition

    f'(w_i) = (r_i - c) / coef   where w_i > 0,   w_i = 0 where (r_i - c)/coef < f'(0+),

so w_i = (f')^-1((r_i - c) / coef), truncated at 0, with the normaliser c the one root of the
decreasing function c -> mean(w(c)) - 1. The divergences (conventions stated: they set coef's scale):

    kl              f = z log z                     f' = 1 + log z       w = exp(t - 1)  (the project's tilt)
    chi2            f = (z - 1)^2 / 2   (Pearson,   f' = z - 1           w = max(0, 1 + t): a *linear* tilt,
                                         1/2 convention)                 truncated where 1 + t < 0
    mixed_chi2_kl   f = (z - 1)^2 / 2 + z log z     f' = z + log z       w = omega(t), Wright omega = W(e^t)
                    (Huang et al. 2024, chi-PO)                          (Lambert W, real branch)
    hellinger       f = (sqrt z - 1)^2              f' = 1 - z^-1/2      w = (1 - t)^-2, t < 1

with t = (r - c) / coef. Reported per prompt, exactly on the pool: the tilted means of r (and
any other arrays), the divergence itself mean(f(w)), the KL of the same weights mean(w log w)
(the common x-axis every mitigation is placed on), the ESS N / mean(w^2), and the fraction of
samples the optimum drops (w = 0): only a divergence with a finite f'(0+) truncates (chi2, where
1 + t <= 0); KL, mixed and Hellinger have f'(0+) = -inf, so every weight is positive in exact
arithmetic and a weight that underflows to 0.0 in floating point is not dropped (it is reported as
0 dropped, not as truncation).

chi2 on a pool without truncation: c = mean(r), gain = Var(r) / coef and chi2 = Var(r) / (2 coef^2)
(population variance of the pool); for r = V + X with X independent of V the utility share of the
gain is Var(V) / Var(r) at every such coef.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

DIVERGENCES = ("kl", "chi2", "mixed_chi2_kl", "hellinger")


@dataclass(frozen=True)
class Divergence:
    name: str
    f: Callable[[np.ndarray], np.ndarray]
    """The convex generator, f(1) = 0."""
    fprime: Callable[[np.ndarray], np.ndarray]
    """Its derivative."""
    inverse: Callable[[np.ndarray], np.ndarray]
    """(f')^-1 extended by 0 below f'(0+): the weight at t = (r - c) / coef."""
    dinverse: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    """dw/dt as a function of (t, w), for Newton on the normaliser from a nearby start."""
    truncates: bool = False
    """f'(0+) is finite, so the optimum sets w = 0 where t < f'(0+) (chi2). Otherwise w > 0 everywhere."""


def _xlogx(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.where(z > 0, z * np.log(np.where(z > 0, z, 1.0)), 0.0)


def _hellinger_inverse(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    return np.where(t < 1, 1.0 / np.square(1.0 - np.minimum(t, 1.0 - 1e-300)), np.inf)


OMEGA_EXP_BELOW = -36.0
"""Below this t, omega(t) = e^t (1 - e^t + O(e^2t)) equals e^t to a relative 2e-16: the float value."""


def _omega(t: np.ndarray) -> np.ndarray:
    """Wright omega, the w solving w + log w = t, for every real t without forming e^t (which
    overflows past 709); e^t itself far below 0, where the two agree to rounding (and exp is ~20x
    cheaper than scipy's wrightomega on the bulk of a large pool)."""
    t = np.asarray(t, dtype=np.float64)
    out = np.exp(np.minimum(t, OMEGA_EXP_BELOW))
    m = t > OMEGA_EXP_BELOW
    if m.any():
        out[m] = special.wrightomega(t[m]).real
    return out


KL = Divergence(
    "kl",
    _xlogx,
    lambda z: 1 + np.log(z),
    lambda t: np.exp(np.asarray(t, dtype=np.float64) - 1),
)
CHI2 = Divergence(
    "chi2",
    lambda z: 0.5 * np.square(np.asarray(z) - 1),
    lambda z: np.asarray(z) - 1.0,
    lambda t: np.maximum(0.0, 1 + t),
    truncates=True,
)
MIXED = Divergence(
    "mixed_chi2_kl",
    lambda z: 0.5 * np.square(np.asarray(z) - 1) + _xlogx(z),
    lambda z: np.asarray(z) + np.log(z),
    _omega,
    lambda t, w: w / (1 + w),  # w + log w = t: dw/dt (1 + 1/w) = 1
)
HELLINGER = Divergence(
    "hellinger",
    lambda z: np.square(np.sqrt(np.asarray(z)) - 1),
    lambda z: 1 - 1 / np.sqrt(z),
    _hellinger_inverse,
    lambda t, w: 2 * w * np.sqrt(w),  # w = (1 - t)^-2: dw/dt = 2 (1 - t)^-3
)
BY_NAME = {d.name: d for d in (KL, CHI2, MIXED, HELLINGER)}


def get(name: str) -> Divergence:
    if name not in BY_NAME:
        raise KeyError(f"unknown divergence {name!r}; expected one of {', '.join(DIVERGENCES)}")
    return BY_NAME[name]


# ============================================================================================
# The normaliser and the weights
# ============================================================================================
def _chi2_shift(a: np.ndarray) -> float:
    """s with mean(max(0, 1 + a - s)) = 1, exactly (a sorted search, as in a simplex projection):
    with the k largest a active, s = 1 + (sum of those a - N) / k; the right k is the largest whose
    k-th value is still active."""
    n = a.size
    d = np.sort(a)[::-1]
    s_k = 1 + (np.cumsum(d) - n) / np.arange(1, n + 1)
    active = d + 1 - s_k > 0
    k = int(np.flatnonzero(active)[-1])  # k = 0 is always active: d[0] + 1 - (1 + d[0] - n) = n > 0
    return float(s_k[k])


def shift(a: np.ndarray, div: Divergence, start: float | None = None) -> float:
    """s = c / coef for one prompt's a = r / coef: the root of mean(w(a - s)) = 1. `start`: a
    nearby s (the same prompt's at a close coef): Newton from it, 2-4 passes over the pool."""
    a = np.asarray(a, dtype=np.float64)
    if div.name == "kl":  # closed form: mean(exp(a - s - 1)) = 1
        return float(special.logsumexp(a) - np.log(a.size) - 1)
    if div.name == "chi2":
        return _chi2_shift(a)
    t1 = float(div.fprime(np.array(1.0)))  # w >= 1 exactly where t >= f'(1)
    lo, hi = float(a.min()) - t1, float(a.max()) - t1  # mean(w) >= 1 at lo, <= 1 at hi
    if div.name == "hellinger":  # t must stay below 1; at t_top = 1 - N^-1/2 the top weight alone is N
        lo = max(lo, float(a.max()) - 1 + 1 / np.sqrt(a.size))
    if hi <= lo:
        return lo
    if start is not None and div.dinverse is not None and lo < start < hi:
        got = _newton_log(a, div, start, lo, hi)
        if got is not None:
            return got
    return _log_root(a, div, lo, hi)


def _newton_log(a: np.ndarray, div: Divergence, s: float, lo: float, hi: float) -> float | None:
    """Newton on h(s) = log mean w(a - s) (decreasing) from a nearby s, inside [lo, hi]; None
    when it does not converge in a few steps (the caller then brackets)."""
    assert div.dinverse is not None
    for _ in range(12):
        t = a - s
        w = div.inverse(t)
        m = float(np.mean(w))
        if not (np.isfinite(m) and m > 0):
            return None
        h = float(np.log(m))
        if abs(h) <= 1e-14:
            return s
        if h > 0:
            lo = s
        else:
            hi = s
        dh = -float(np.mean(div.dinverse(t, w))) / m
        step = s - h / dh if dh < 0 else np.nan
        if not (lo < step < hi):
            return None
        if abs(step - s) <= 4 * np.finfo(float).eps * max(1.0, abs(s)):
            return step
        s = step
    return None


def _log_root(a: np.ndarray, div: Divergence, lo: float, hi: float) -> float:
    """The root of h(s) = log mean(w(a - s)) in [lo, hi] (h decreasing; log makes it near linear
    where the top samples carry the weight: 5-30 passes over the pool). Hellinger in
    u = log(s - pole), the pole s = max(a) - 1 where the top weight is infinite: near it
    mean(w) ~ (s - pole)^-2 / N, linear in u."""

    def h(s: float) -> float:
        return float(np.log(np.mean(div.inverse(a - s))))

    if div.name == "hellinger":
        pole = float(a.max()) - 1
        u = optimize.brentq(
            lambda u: h(pole + np.exp(u)), np.log(lo - pole), np.log(hi - pole), xtol=1e-15, rtol=1e-15, maxiter=500
        )
        return pole + float(np.exp(u))
    scale = max(1.0, abs(lo), abs(hi))
    return float(optimize.brentq(h, lo, hi, xtol=1e-13 * scale, rtol=1e-15, maxiter=500))


def weights(
    proxy: np.ndarray, coef: float | np.ndarray, divergence: str, hint: dict[int, float] | None = None
) -> np.ndarray:
    """w, shape (P, N): pi/pi_0 on each prompt's pool, mean 1 per row. `coef`: one for every
    prompt, or one per prompt (shape (P,)). `hint`: row -> its normaliser c (reward units) from a
    solve at a nearby coef, read as Newton's start and overwritten with this solve's (a search
    over coef, eval/matched.py, passes one)."""
    div = get(divergence)
    r = np.atleast_2d(np.asarray(proxy, dtype=np.float64))
    c = np.broadcast_to(np.asarray(coef, dtype=np.float64), r.shape[:1])
    top = r.max(axis=-1)
    # Shift-invariant: subtract each row's max first, so r / coef stays representable.
    a = (r - top[:, None]) / c[:, None]
    w = np.empty_like(a)
    for i in range(a.shape[0]):
        start = (hint[i] - top[i]) / c[i] if hint is not None and i in hint else None
        s = shift(a[i], div, start)
        if hint is not None:
            hint[i] = float(top[i] + s * c[i])
        wi = div.inverse(a[i] - s)
        w[i] = wi / wi.mean()  # the root is exact to ~1e-13; make mean(w) = 1 to rounding
    return w


def optimum(
    proxy: np.ndarray,
    coef: float | np.ndarray,
    divergence: str,
    hint: dict[int, float] | None = None,
    **values: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-prompt (shape (P,)) quantities of the f-regularised optimum: tilted means of ``proxy``
    and of every array in ``values`` (shape (P, N)), ``kl`` = mean(w log w), ``divergence`` =
    mean(f(w)), ``ess`` = N / mean(w^2), ``dropped`` = fraction of samples the optimum truncates
    (w = 0 where t < f'(0+): chi2 only; 0 for the others, whose weights underflow but are never
    0), and the weights themselves under ``w``. `coef`: scalar or one per prompt; `hint`: see weights."""
    div = get(divergence)
    w = weights(proxy, coef, divergence, hint)
    n = w.shape[-1]
    out = {
        "w": w,
        "proxy": np.mean(w * proxy, axis=-1),
        "kl": np.mean(_xlogx(w), axis=-1),
        "divergence": np.mean(div.f(w), axis=-1),
        "ess": n / np.mean(np.square(w), axis=-1),
        "dropped": np.mean(w == 0, axis=-1) if div.truncates else np.zeros(w.shape[0]),
    }
    for name, v in values.items():
        out[name] = np.mean(w * v, axis=-1)
    return out
