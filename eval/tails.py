"""Tail diagnostics for a 1-D sample: is its upper tail heavier than every exponential?

"Heavy" is the definition of Kwa, Thomas & Garriga-Alonso (2024):
lim_{x->inf} e^{tx} P(X > x) = inf for every t > 0. Lognormal, Student-t, Pareto and Levy
are heavy; normal, exponential, Gumbel and bounded laws are light; the exponential is the
boundary and counts as light.

Estimators (all on the upper tail of any real sample):
  hill               tail index gamma = 1/alpha of a power law, over a range of k
  pickands           extreme-value index xi from three order statistics
  moment_estimator   Dekkers-Einmahl-de Haan extreme-value index xi
  gpd_fit            peaks-over-threshold generalized Pareto shape xi, bootstrap interval
  exp_qq_slope       robust slope b of the exponential Q-Q plot of the excesses
  exp_qq_trend       db/du across thresholds at upper quantiles, bootstrap interval
  mean_excess        e(u) = E[X - u | X > u] and its robust trend de/du
  mean_excess_trend  de/du across thresholds at upper quantiles, bootstrap interval
  tail_verdict       light / heavy / inconclusive, with every number and the rule

Every estimator here is invariant to x -> a x + b (a > 0) unless its docstring says
otherwise; reported scales are divided by robust_scale(x) so they are unit-free.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_IQR_PER_SIGMA = 1.3489795003921634  # IQR of N(0, 1): 2 * Phi^{-1}(0.75)
_MAD_PER_SIGMA = 0.6744897501960817  # MAD of N(0, 1): Phi^{-1}(0.75)

# Phi^{-1}(p) at the p the default levels ask for, exactly as scipy.special.ndtri (what
# scipy.stats.norm.ppf / isf return) gives them; tests/test_tails.py checks every entry bit for
# bit. With these a verdict at its defaults imports no scipy (scipy.special alone costs ~0.35 s
# of CPU, scipy.stats ~1.4 s: most of what `goodhart tails FILE` took).
_NDTRI = {
    0.95: 1.6448536269514722,
    0.975: 1.959963984540054,
    0.995: 2.5758293035489004,
    0.9995: 3.2905267314919255,
    0.05: -1.6448536269514729,
    0.01: -2.3263478740408408,
    0.001: -3.090232306167813,
    0.0001: -3.7190164854556804,
}


def _norm_ppf(p: float) -> np.float64:
    """Phi^{-1}(p) for 0 < p < 1, bit for bit scipy.stats.norm.ppf(p)."""
    z = _NDTRI.get(float(p))
    if z is not None:
        return np.float64(z)
    from scipy.special import ndtri

    return np.float64(ndtri(p))


def _norm_isf(q: float) -> np.float64:
    """Phi^{-1}(1 - q) for 0 < q < 1, bit for bit scipy.stats.norm.isf(q) (which is -ndtri(q))."""
    return -_norm_ppf(q)


def _t_isf(df, q):
    """Student-t(df) upper quantile at 0 < q < 1, elementwise and bit for bit scipy.stats.t(df).isf(q)
    (which is -stdtrit(df, q) there), without scipy.stats' import."""
    from scipy.special import stdtrit

    return -stdtrit(df, q)


Memo = Callable[..., Any]
"""memo(fn, **kw) -> fn(**kw), perhaps kept from an earlier call (the pipeline passes its disk cache)."""


def _call(fn: Callable[..., Any], **kw: Any) -> Any:
    return fn(**kw)


# ---------------------------------------------------------------- input, scale, helpers


def _sample(x: np.ndarray, min_n: int = 20) -> np.ndarray:
    """Validate a 1-D finite sample and return it as float64."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-D sample, got an array of shape {a.shape}")
    bad = int(np.count_nonzero(~np.isfinite(a)))
    if bad:
        raise ValueError(f"sample has {bad} non-finite values (nan/inf); drop them first")
    if a.size < min_n:
        raise ValueError(f"sample has {a.size} values; this estimator needs at least {min_n}")
    return a


def robust_scale(x: np.ndarray) -> float:
    """Normal-consistent robust scale: IQR / 1.349, else MAD / 0.6745, else std.

    The fallbacks exist for samples with heavy ties (a reward that is mostly one value).
    """
    a = _sample(x, min_n=2)
    q25, q75 = np.quantile(a, [0.25, 0.75])
    for s in (
        (q75 - q25) / _IQR_PER_SIGMA,
        np.median(np.abs(a - np.median(a))) / _MAD_PER_SIGMA,
        np.std(a),
    ):
        if s > 0:
            return float(s)
    raise ValueError("sample is constant: no scale, no tail to diagnose")


def _shifted_upper(x: np.ndarray) -> np.ndarray:
    """Upper half of x - median(x), positive values only, sorted descending.

    Hill and the moment estimator take logs, so they need positive data and are not
    location-invariant. Shifting by the median makes them location-invariant (the median
    moves with x), keeps them scale-invariant (they use log-ratios) and does not change
    the tail index (regular variation survives a shift). The common x - min(x) + 1 is
    neither: the +1 carries units and the min is the noisiest point of a heavy lower
    tail. The price is a finite-sample bias of order (distance of the median from the
    law's natural origin) / threshold, small for k << n/2 (about +0.04 on gamma = 0.5 at
    n = 20000, k ~ 100, inside the interval).
    """
    y = x - np.median(x)
    return -np.sort(-y[y > 0])


@dataclass(frozen=True)
class IndexEstimate:
    """One estimate of a tail index with its asymptotic standard error."""

    name: str
    value: float
    se: float
    k: int

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        z = _norm_ppf(0.5 + level / 2)
        return (self.value - z * self.se, self.value + z * self.se)


# ---------------------------------------------------------------- Hill


@dataclass(frozen=True)
class HillResult:
    """Hill plot gamma(k) with its stable choice k_star; see hill()."""

    ks: np.ndarray
    gamma: np.ndarray
    se: np.ndarray
    k_star: int
    shift: float

    @property
    def at_k_star(self) -> IndexEstimate:
        i = int(np.searchsorted(self.ks, self.k_star))
        return IndexEstimate("hill", float(self.gamma[i]), float(self.se[i]), self.k_star)


def _stable_k(ks: np.ndarray, gamma: np.ndarray) -> int:
    """k at the centre of the window (a fifth of the range) where gamma(k) varies least."""
    w = max(3, len(ks) // 5)
    if len(ks) <= w:
        return int(ks[len(ks) // 2])
    var = sliding_window_view(gamma, w).var(axis=1)
    return int(ks[int(np.argmin(var)) + w // 2])


def hill(x: np.ndarray, ks: np.ndarray | None = None) -> HillResult:
    """Hill estimator of gamma = 1/alpha over a range of k upper order statistics.

    With y = x - median(x) (see _shifted_upper for why) sorted descending y_(1) >= ...:
        gamma_k = (1/k) sum_{i=1..k} log y_(i) - log y_(k+1),   se_k = gamma_k / sqrt(k).
    Default ks: every integer in [n^0.1, n^0.5], as Kwa et al. k_star is the centre of
    the window (a fifth of the range) where the Hill plot varies least.
    Caution: on an exponential tail gamma_k is positive and shrinks only slowly with k,
    so Hill alone cannot tell an exponential from a power law.
    """
    a = _sample(x)
    n = a.size
    y = _shifted_upper(a)
    if ks is None:
        ks = np.arange(int(np.ceil(n**0.1)), int(np.floor(n**0.5)) + 1)
    ks = np.unique(np.asarray(ks, dtype=np.int64))
    if ks.size == 0 or ks[0] < 1 or ks[-1] >= y.size:
        got = f"{ks[0]}..{ks[-1]}" if ks.size else "nothing"
        raise ValueError(f"ks must lie in [1, {y.size - 1}] (upper half of the sample), got {got}")
    logs = np.log(y[: ks[-1] + 1])
    gamma = np.cumsum(logs)[ks - 1] / ks - logs[ks]
    return HillResult(ks, gamma, gamma / np.sqrt(ks), _stable_k(ks, gamma), float(np.median(a)))


# ---------------------------------------------------------------- Pickands, moment


def pickands(x: np.ndarray, k: int) -> IndexEstimate:
    """Pickands (1975) estimator of the extreme-value index xi (location/scale-invariant).

    With order statistics descending X_(1) >= X_(2) >= ...:
        xi = log[(X_(k) - X_(2k)) / (X_(2k) - X_(4k))] / log 2,
        Var ~ xi^2 (2^{2xi+1} + 1) / (2 (2^xi - 1) log 2)^2 / k   (-> 3 / (4 log^4 2) / k at 0).
    """
    a = _sample(x)
    if not 1 <= k <= a.size // 4:
        raise ValueError(f"pickands needs 1 <= k <= n/4 = {a.size // 4}, got k={k}")
    d = -np.sort(-a)
    top, mid = d[k - 1] - d[2 * k - 1], d[2 * k - 1] - d[4 * k - 1]
    if top <= 0 or mid <= 0:
        return IndexEstimate("pickands", float("nan"), float("nan"), k)  # ties: undefined
    xi = float(np.log(top / mid) / np.log(2))
    if abs(xi) < 1e-8:
        var = 3 / (4 * np.log(2) ** 4)
    else:
        var = xi**2 * (2 ** (2 * xi + 1) + 1) / (2 * (2**xi - 1) * np.log(2)) ** 2
    return IndexEstimate("pickands", xi, float(np.sqrt(var / k)), k)


def _moment_variance(g: float) -> float:
    """Asymptotic k * Var of the moment estimator (Dekkers, Einmahl, de Haan 1989)."""
    if g >= 0:
        return 1 + g**2
    return (
        (1 - g) ** 2
        * (1 - 2 * g)
        * (4 - 8 * (1 - 2 * g) / (1 - 3 * g) + (5 - 11 * g) * (1 - 2 * g) / ((1 - 3 * g) * (1 - 4 * g)))
    )


def moment_estimator(x: np.ndarray, k: int) -> IndexEstimate:
    """Dekkers-Einmahl-de Haan (1989) moment estimator of the extreme-value index xi.

    On y = x - median(x) (see _shifted_upper) sorted descending, with
    M_j = (1/k) sum_{i=1..k} (log y_(i) - log y_(k+1))^j:
        xi = M_1 + 1 - 1/2 (1 - M_1^2 / M_2)^{-1}.
    Unlike Hill it is consistent for xi of any sign.
    """
    a = _sample(x)
    y = _shifted_upper(a)
    if not 1 <= k < y.size:
        raise ValueError(f"moment_estimator needs 1 <= k < {y.size} (upper half), got k={k}")
    lr = np.log(y[:k]) - np.log(y[k])
    m1, m2 = lr.mean(), (lr**2).mean()
    xi = float(m1 + 1 - 0.5 / (1 - m1**2 / m2))
    return IndexEstimate("moment", xi, float(np.sqrt(_moment_variance(xi) / k)), k)


# ---------------------------------------------------------------- generalized Pareto


def _gpd_profile_mle(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood GPD (xi, sigma) for each row of positive excesses y (B, k).

    Grimshaw (1993) reduction: with theta = xi / sigma the likelihood is maximised in xi by
        xi(theta) = mean log(1 + theta y),   sigma = xi / theta,
    leaving the 1-D profile l(theta) / k = -(log sigma + xi + 1), searched on a coarse grid
    and then by golden section (theta -> 0 is the exponential, sigma = mean y). The same
    likelihood as scipy.stats.genpareto.fit(y, floc=0) (whose c is xi), but vectorised
    over bootstrap rows and ~100x faster. xi is kept >= -1, where the likelihood is
    bounded; at xi = -1 the law is uniform on [0, max y].
    """
    y = np.atleast_2d(y)
    ymax, med = y.max(axis=1), np.median(y, axis=1)
    lo = np.log1p(-(1 - 1e-6) * med / ymax)  # theta > -1/max(y): keep 1 + theta y > 0
    hi = np.full_like(lo, 6 * np.log(2))  # theta * median = 2^6 - 1: xi up to ~6

    def profile(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        theta = np.expm1(u) / med[:, None]  # (B, G)
        theta = np.where(np.abs(theta) < 1e-12, 1e-12, theta)
        xi = np.stack([np.log1p(theta[:, g, None] * y).mean(axis=1) for g in range(u.shape[1])], 1)
        sigma = xi / theta
        ll = -(np.log(sigma) + xi + 1)
        return np.where(xi >= -1, ll, -np.inf), xi, sigma

    def loglik(u: np.ndarray) -> np.ndarray:
        return profile(u[:, None])[0][:, 0]

    rows = np.arange(y.shape[0])
    u = np.linspace(lo, hi, 16, axis=1)  # (B, G), u = log(1 + theta * median(y))
    best = np.argmax(profile(u)[0], axis=1)
    a = u[rows, np.maximum(best - 1, 0)]  # bracket around the coarse maximum
    b = u[rows, np.minimum(best + 1, u.shape[1] - 1)]
    # golden-section search: the profile is flat near its maximum and skewed towards
    # the xi = -1 side, so a parabola through three grid points misses it by ~0.01 in xi
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = loglik(c), loglik(d)
    for _ in range(16):
        keep_left = fc > fd  # maximum lies in [a, d]
        a, b = np.where(keep_left, a, c), np.where(keep_left, d, b)
        new = np.where(keep_left, b - g * (b - a), a + g * (b - a))
        fnew = loglik(new)
        c, d, fc, fd = (
            np.where(keep_left, new, d),
            np.where(keep_left, c, new),
            np.where(keep_left, fnew, fd),
            np.where(keep_left, fc, fnew),
        )
    ll, xi, sigma = profile(np.where(fc > fd, c, d)[:, None])
    xi, sigma, ll = xi[:, 0], sigma[:, 0], ll[:, 0]
    uniform = -np.log(ymax) > ll  # the xi = -1 corner beats every interior point
    return np.where(uniform, -1.0, xi), np.where(uniform, ymax, sigma)


@dataclass(frozen=True)
class GPDFit:
    """Peaks-over-threshold GPD fit; xi is scipy.stats.genpareto's c."""

    xi: float
    xi_interval: tuple[float, float]
    xi_se_asymptotic: float
    sigma: float
    sigma_over_scale: float
    threshold: float
    threshold_quantile: float
    n_exceed: int
    n_boot: int
    excess: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    """The excesses over the threshold the fit was made on."""

    @property
    def loglik(self) -> float:
        """Log-likelihood of the fit on its excesses (computed when read: scipy.stats is slow to import)."""
        from scipy import stats

        return float(stats.genpareto.logpdf(self.excess, c=self.xi, scale=self.sigma).sum())


def gpd_fit(
    x: np.ndarray,
    threshold_quantile: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> GPDFit:
    """Generalized Pareto fit to the excesses over the threshold_quantile of x.

    Excesses y = x - u over u = quantile(x, q) follow, for a high u,
        P(Y > y) = (1 + xi y / sigma)^{-1/xi}   (exp(-y / sigma) at xi = 0),
    scipy.stats.genpareto(c=xi, scale=sigma). (Careful: genextreme uses c = -xi.)
    xi > 0: Frechet domain (power law), xi = 0: Gumbel domain (normal, exponential AND
    lognormal), xi < 0: bounded. The interval is the bootstrap percentile interval from
    n_boot resamples of the excesses (threshold held fixed); with n_boot=0 it is the
    asymptotic normal interval, Var(xi) ~ (1 + xi)^2 / k (Smith 1985, valid for xi > -1/2).
    """
    a = _sample(x)
    u = float(np.quantile(a, threshold_quantile))
    y = a[a > u] - u
    if y.size < 10:
        raise ValueError(
            f"only {y.size} values exceed the {threshold_quantile} quantile; lower threshold_quantile or pass more data"
        )
    xi_a, sigma_a = _gpd_profile_mle(y[None, :])
    xi, sigma = float(xi_a[0]), float(sigma_a[0])
    se = (1 + xi) / np.sqrt(y.size) if xi > -0.5 else float("nan")
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boot_xi, _ = _gpd_profile_mle(rng.choice(y, size=(n_boot, y.size), replace=True))
        lo_hi = np.quantile(boot_xi, [0.5 - level / 2, 0.5 + level / 2])
        interval = (float(lo_hi[0]), float(lo_hi[1]))
    else:
        z = _norm_ppf(0.5 + level / 2)
        interval = (xi - z * se, xi + z * se)
    return GPDFit(
        xi,
        interval,
        float(se),
        sigma,
        sigma / robust_scale(a),
        u,
        threshold_quantile,
        int(y.size),
        n_boot,
        excess=y,
    )


# ---------------------------------------------------------------- exponential Q-Q, mean excess


def _exp_quantiles(k: int) -> np.ndarray:
    """Standard exponential plotting positions q_i = -log(1 - i/(k+1)), i = 1..k."""
    return -np.log1p(-np.arange(1, k + 1) / (k + 1))


def exp_qq_slope(x: np.ndarray, threshold_quantile: float = 0.95) -> float:
    """Robust slope of the exponential Q-Q plot of the excesses, in units of robust_scale(x).

    Excesses over u = quantile(x, q), sorted ascending y_(1) <= ... <= y_(k), plotted
    against q_i = -log(1 - i/(k+1)); the slope is the median slope of the rays from the
    origin to the Q-Q points,
        b = median_i y_(i) / q_i.
    The median, not least squares, because least squares follows the top few points of
    a heavy sample. For an exponential tail b is its scale at every threshold (memoryless);
    across increasing thresholds b grows for a heavy tail and falls for a lighter one.
    """
    a = _sample(x)
    u = np.quantile(a, threshold_quantile)
    y = np.sort(a[a > u] - u)
    if y.size < 10:
        raise ValueError(f"only {y.size} values exceed the {threshold_quantile} quantile")
    return float(np.median(y / _exp_quantiles(y.size)) / robust_scale(a))


def _theil_sen(u: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Median pairwise slope of e against u, row by row: (B, m), (B, m) -> (B,)."""
    i, j = np.triu_indices(u.shape[-1], 1)
    du = u[..., j] - u[..., i]
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.where(du != 0, (e[..., j] - e[..., i]) / du, np.nan)
    return np.nanmedian(slopes, axis=-1)


@dataclass(frozen=True)
class MeanExcess:
    """e(u) at given thresholds and its trend; e_scaled is e / robust_scale(x)."""

    thresholds: np.ndarray
    e: np.ndarray
    e_scaled: np.ndarray
    n_exceed: np.ndarray
    slope: float


def mean_excess(x: np.ndarray, thresholds: np.ndarray) -> MeanExcess:
    """Mean-excess function e(u) = E[X - u | X > u] and its Theil-Sen slope de/du.

    de/du is unit-free, hence location/scale-invariant: 0 for the exponential (memoryless),
    xi / (1 - xi) for a GPD tail (1/(alpha-1) for Pareto alpha), about sigma^2 / log u
    for a lognormal, negative for normal (e ~ 1/u) and bounded laws. e(u) is infinite for
    xi >= 1 and its estimate erratic for xi >= 1/2 (infinite variance). Thresholds with
    fewer than 2 exceedances give nan and are left out of the slope.
    """
    a = np.sort(_sample(x))
    t = np.asarray(thresholds, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(a[::-1])])  # sums of the top m values
    m = a.size - np.searchsorted(a, t, side="right")  # number of X > u
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(m >= 2, csum[m] / np.maximum(m, 1) - t, np.nan)
    ok = np.isfinite(e)
    slope = float(_theil_sen(t[ok], e[ok])) if ok.sum() >= 2 else float("nan")
    return MeanExcess(t, e, e / robust_scale(a), m, slope)


# ---------------------------------------------------------------- trends across thresholds
# Both trends evaluate a statistic at order-statistic thresholds: with the sample sorted
# descending, `top`, the threshold for k exceedances is top[k] (the (k+1)-th largest).


def _mean_excesses(top: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds and mean excesses (sum of the top k) / k - u_k, row by row."""
    u = top[:, ks]
    return u, np.cumsum(top, axis=1)[:, ks - 1] / ks - u


def _qq_positions(k: int) -> np.ndarray:
    """The order statistics (0 = the largest) whose excesses over the k-th enter b(u): enough for a median."""
    return np.unique(np.linspace(0, k - 1, min(k, 512)).astype(np.int64))


def _qq_slopes(top: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds and robust exponential Q-Q slopes (see exp_qq_slope), row by row."""
    u = top[:, ks]
    b = []
    for k in ks:
        i = _qq_positions(int(k))
        b.append(np.median((top[:, i] - top[:, k, None]) / _exp_quantiles(k)[::-1][i], axis=1))
    return u, np.stack(b, axis=1)


@dataclass(frozen=True)
class ThresholdTrend:
    """Theil-Sen slope of a tail statistic against its threshold u, with an interval."""

    statistic: str
    slope: float
    se: float
    interval: tuple[float, float]
    n_exceed: np.ndarray
    quantiles: np.ndarray
    thresholds: np.ndarray
    values_scaled: np.ndarray
    n_boot: int


@dataclass(frozen=True)
class _Tops:
    """Thresholds (as exceedance counts) and the sorted tops of a sample and its resamples."""

    ks: np.ndarray
    top: np.ndarray  # (1, K+1) largest values, descending
    boot: np.ndarray  # (B, K+1) the same for each bootstrap resample
    n: int
    scale: float


def _tops(x: np.ndarray, quantile_range: tuple[float, float], n_points: int, n_boot: int, seed: int) -> _Tops:
    """Exceedance counts geometric from n (1 - q_lo) to max(n (1 - q_hi), 20), so the far
    tail is represented, and the top of n_boot resamples of the whole sample."""
    a = _sample(x, min_n=100)
    n = a.size
    k_hi = int(round(n * (1 - quantile_range[0])))
    k_lo = max(int(round(n * (1 - quantile_range[1]))), 20)
    if k_hi <= k_lo:
        raise ValueError(f"n={n} is too small for quantile_range={quantile_range}; pass more data")
    if n_boot < 20:
        raise ValueError(f"n_boot={n_boot}: the bootstrap se needs at least 20 resamples")
    ks = np.unique(np.geomspace(k_hi, k_lo, n_points).round().astype(np.int64))
    desc = -np.sort(-a)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, k_hi + 1))
    # Only the top k_hi + 1 of a resample matter, and they come from the top m originals
    # except with negligible probability. Draws landing in the top m: T ~ Binomial(n, m/n),
    # spread uniformly over them (exactly the multinomial resample restricted to those
    # cells); repeating the sorted values by their counts keeps the resample sorted.
    m = min(n, k_hi + 1 + int(8 * np.sqrt(k_hi + 1)) + 50)
    for b in range(n_boot):
        t = rng.binomial(n, m / n)
        if t < k_hi + 1:  # practically never: fall back to the whole resample
            m_b, t = n, n
        else:
            m_b = m
        counts = np.bincount(rng.integers(0, m_b, t), minlength=m_b)
        boot[b] = np.repeat(desc[:m_b], counts)[: k_hi + 1]
    return _Tops(ks, desc[None, : k_hi + 1], boot, n, robust_scale(a))


_TailStatistic = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _trend(statistic: str, stat: _TailStatistic, tops: _Tops, level: float) -> ThresholdTrend:
    """Theil-Sen slope of the statistic against u; interval slope +- z se, se = bootstrap
    IQR / 1.349 (robust: for heavy samples the bootstrap distribution of the slope is
    itself heavy-tailed, and its 0.5% percentiles are noise with a few hundred resamples)."""
    u, v = stat(tops.top, tops.ks)
    slope = float(_theil_sen(u, v)[0])
    q25, q75 = np.quantile(_theil_sen(*stat(tops.boot, tops.ks)), [0.25, 0.75])
    se = float((q75 - q25) / _IQR_PER_SIGMA)
    z = _norm_ppf(0.5 + level / 2)
    return ThresholdTrend(
        statistic,
        slope,
        se,
        (slope - z * se, slope + z * se),
        tops.ks,
        1 - tops.ks / tops.n,
        u[0],
        v[0] / tops.scale,
        len(tops.boot),
    )


def mean_excess_trend(
    x: np.ndarray,
    quantile_range: tuple[float, float] = (0.90, 0.995),
    n_points: int = 15,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> ThresholdTrend:
    """de/du: Theil-Sen slope of the mean excess e(u) over thresholds at upper quantiles.

    0 for an exponential tail, > 0 heavier, < 0 lighter (see mean_excess). Unreliable for
    xi >= 1/2, where e(u) has infinite variance; exp_qq_trend is the robust twin.
    """
    tops = _tops(x, quantile_range, n_points, n_boot, seed)
    return _trend("mean excess", _mean_excesses, tops, level)


def exp_qq_trend(
    x: np.ndarray,
    quantile_range: tuple[float, float] = (0.90, 0.995),
    n_points: int = 15,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> ThresholdTrend:
    """db/du: Theil-Sen slope of the robust exponential Q-Q slope b(u) (exp_qq_slope)
    over thresholds at upper quantiles.

    The excesses over u of an exponential are the same exponential at every u, so b(u) is
    flat (db/du = 0); for a GPD tail b(u) is proportional to sigma + xi (u - u0), so db/du
    has the sign of xi; a lognormal's b(u) grows like u / log u; a normal's falls like 1/u.
    """
    tops = _tops(x, quantile_range, n_points, n_boot, seed)
    return _trend("exp Q-Q slope", _qq_slopes, tops, level)


# ---------------------------------------------------------------- verdict

_RULE = (
    "heavy if the growth db/du of the exponential Q-Q slope b(u) across thresholds from the "
    "{q_lo:g} quantile to the top {k_min} values AND the GPD shape xi above the {q_gpd:g} quantile "
    "are both significantly > 0 (lower {level:.0%} bounds > 0); light if neither is significantly "
    "> 0 and db/du is below what every power tail of index <= k shows over the same thresholds "
    "(a Student-t(df) sample of this size falls below mean - z sd of its own, simulated, db/du with "
    "probability {ex:.2g}), with k >= {k_light:g}: the call names k, the largest Student-t df (the "
    "power tail that looks most exponential) the sample excludes, and never more than the index whose turn-up (u = sqrt(df)) lies inside "
    "the thresholds (~{df_res:.3g} here); inconclusive otherwise (no power tail of index >= {k_light:g} "
    "excluded, or the two heavy statistics disagree). Mean-excess growth, Hill, Pickands and moment "
    "are reported, not used."
)


def power_tail_trend(df: float, n: int, ks: np.ndarray, reps: int = 48, seed: int = 0, spread: bool = False):
    """db/du that a Student-t(df) sample of n values shows, on average, over these thresholds
    (exceedance counts ks): the statistic of exp_qq_trend on `reps` simulated tops of such a
    sample (`spread`: (mean, sd over the reps), the statistic's sampling law under t(df)). Only the top max(ks) + 1 order statistics matter, drawn exactly: their survival
    values are Gamma_j / Gamma_{n+1} (cumulative sums of unit exponentials), the same draws for
    every df (common random numbers: smooth and decreasing in df, checked in tests/test_tails.py;
    +0.57 at df = 2 down to the normal's -0.13 at n = 30,000). The quantiles at plotting positions
    would not do: the sample statistic sits below them by 0.7 of its sd at n = 300,000."""
    slopes = _power_slopes(np.array([float(df)]), n, ks, reps, seed)[0]
    if spread:
        return float(np.mean(slopes)), float(np.std(slopes, ddof=1))
    return float(np.mean(slopes))


def _power_slopes(dfs: np.ndarray, n: int, ks, reps: int, seed: int) -> np.ndarray:
    """(D, reps) db/du of power_tail_trend's simulated tops, for each df of dfs at once: the same
    draws for every df, each row computed exactly as one df alone would be (row by row)."""
    ks = np.asarray(ks)
    m = int(np.max(ks)) + 1
    rng = np.random.default_rng(seed)
    gam = np.cumsum(rng.exponential(size=(reps, m)), axis=1)
    total = gam[:, -1:] + rng.gamma(n + 1 - m, size=(reps, 1))
    need = np.unique(np.concatenate([ks, *(_qq_positions(int(k)) for k in ks)]))  # what _qq_slopes reads
    p = gam[:, need] / total  # (reps, |need|) survival values of the top order statistics
    out = np.empty((len(dfs), reps))
    step = max(1, (1 << 22) // (reps * m))  # dfs per block: ~32 MB of tops at a time
    for lo in range(0, len(dfs), step):
        d = np.asarray(dfs[lo : lo + step], dtype=np.float64)
        top = np.full((len(d), reps, m), np.nan)
        top[:, :, need] = _t_isf(d[:, None, None], p[None])  # (D, reps, m), descending where filled
        u, v = _qq_slopes(top.reshape(-1, m), ks)
        out[lo : lo + len(d)] = _theil_sen(u, v).reshape(len(d), reps)
    return out


@functools.lru_cache(maxsize=8)
def _power_grid(n: int, ks: tuple[int, ...], cap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(df, mean, sd) of power_tail_trend on a log grid of df from 1 to cap: once per sample size
    (a report reads several pools of one size; tail_verdict's memo keeps it across processes),
    then interpolated. Every row is power_tail_trend(df, n, ks, spread=True) bit for bit."""
    dfs = np.geomspace(1.0, cap, 33)
    slopes = _power_slopes(dfs, n, ks, 48, 0)
    ms = np.array([(float(np.mean(s)), float(np.std(s, ddof=1))) for s in slopes])
    return dfs, ms[:, 0], ms[:, 1]


def _grid(n: int, ks: np.ndarray, cap: float, memo: Memo | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (memo or _call)(_power_grid, n=int(n), ks=tuple(int(k) for k in ks), cap=float(cap))


def excluded_index(slope: float, n: int, ks: np.ndarray, cap: float, z: float, memo: Memo | None = None) -> float:
    """The largest Student-t df (up to `cap`) that a sample whose db/du is `slope` excludes: a
    t(df) sample of the same size shows db/du below mean_df - z sd_df (its own sampling law,
    simulated by power_tail_trend on a grid of df) with probability ~Phi(-z), and this sample's
    is below that. 0 when not even df = 1 is excluded. (A test under each t(df) itself: the
    sample's bootstrap se, which undercovers on some samples, does not enter.) `memo`: see
    tail_verdict."""
    dfs, m, sd = _grid(n, ks, cap, memo)
    bound = np.minimum.accumulate(m - z * sd)  # decreasing in df (made exactly so against MC noise)
    over = bound > slope  # the df this sample excludes: a prefix of the grid
    if not over[0]:
        return 0.0
    if over[-1]:
        return float(cap)
    j = int(np.argmin(over))  # first df not excluded; interpolate the crossing in log df
    t = (bound[j - 1] - slope) / (bound[j - 1] - bound[j])
    return float(np.exp(np.log(dfs[j - 1]) + t * (np.log(dfs[j]) - np.log(dfs[j - 1]))))


def resolved_index(n: int, k_min: int = 100) -> float:
    """The largest Student-t df whose b(u) turns up (at u = sqrt(df), where the mean excess
    (df + u^2) / ((df - 1) u) is smallest) below the threshold of the top k_min of n values: the
    power-tail index a LIGHT call on n values excludes. ~11 at n = 30,000, ~17 at 300,000."""
    q = k_min / n
    f = lambda df: np.sqrt(df) - _t_isf(df, q)  # noqa: E731  (< 0 while the turn is in range)
    lo, hi = 2.0, 1e4
    if f(lo) >= 0:
        return lo
    if f(hi) < 0:
        return hi
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return float(lo)


@dataclass(frozen=True)
class TailReport:
    """Every tail statistic of one sample, the verdict and the rule that produced it."""

    n: int
    scale: float
    verdict: str
    rule: str
    reasons: tuple[str, ...]
    level: float
    qq_trend: ThresholdTrend
    mean_excess: ThresholdTrend
    gpd: GPDFit
    hill: IndexEstimate
    hill_ks: tuple[int, int]
    pickands: IndexEstimate
    moment: IndexEstimate
    excluded: float = float("nan")
    """k: every power tail of index <= k is excluded (a `light` call is light up to k)."""

    @property
    def label(self) -> str:
        """The verdict as printed: a light call names what it excludes."""
        if self.verdict == "light":
            return f"light (no power tail of index <= {self.excluded:.3g})"
        return self.verdict

    def table(self) -> str:
        z = _norm_ppf(0.5 + self.level / 2)
        g, qq = self.gpd, self.qq_trend
        q_lo, q_hi = qq.quantiles[-1], qq.quantiles[0]

        def row(name: str, value: float, lo: float, hi: float, note: str = "") -> str:
            return f"  {name:<36s} {value:+9.4f}  [{lo:+9.4f}, {hi:+9.4f}]  {note}"

        def est(name: str, e: IndexEstimate, note: str = "") -> str:
            return row(f"{name} (k={e.k})", e.value, e.value - z * e.se, e.value + z * e.se, note)

        lines = [
            f"tail verdict: {self.label.upper().replace('NO POWER TAIL OF INDEX', 'no power tail of index')}"
            f"  (n={self.n}, robust scale={self.scale:.4g})",
            f"rule: {self.rule}",
            f"because: {'; '.join(self.reasons)}",
            f"  {'statistic':<36s} {'value':>9s}  {f'{self.level:.0%} interval':^22s}",
            row(
                f"exp Q-Q slope growth db/du q{q_lo:.3g}-{q_hi:.3g}",
                qq.slope,
                *qq.interval,
                f"b/scale {qq.values_scaled[-1]:.3g} -> {qq.values_scaled[0]:.3g}",
            ),
            row(
                f"mean-excess growth de/du q{q_lo:.3g}-{q_hi:.3g}",
                self.mean_excess.slope,
                *self.mean_excess.interval,
                "0: exponential, >0: heavier",
            ),
            row(f"GPD xi (u=q{g.threshold_quantile:g}, k={g.n_exceed})", g.xi, *g.xi_interval, "scipy genpareto c"),
            est(f"Hill gamma, k* in [{self.hill_ks[0]}, {self.hill_ks[1]}]", self.hill, "> 0 even for exponential"),
            est("Pickands xi", self.pickands),
            est("moment (DEdH) xi", self.moment),
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def tail_verdict(
    x: np.ndarray,
    level: float = 0.99,
    flat_tol: float = 0.0,
    trend_quantile_range: tuple[float, float] | None = None,
    gpd_quantile: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
    k_min: int = 100,
    light_index: float = 3.0,
    exclude_error: float = 0.001,
    memo: Memo | None = None,
) -> TailReport:
    """Is the upper tail of x heavier than every exponential (Kwa et al. 2024)?

    Rule (also TailReport.rule, printed with the numbers; bounds are two-sided `level`):
      heavy         db/du lower bound > 0  AND  GPD xi lower bound > 0
      light         neither lower bound > 0  AND  k >= light_index, where k = excluded_index:
                    the largest Student-t df whose own db/du over the same thresholds is above
                    the sample's upper bound of db/du (minus flat_tol), capped at
                    resolved_index(n); the call is "light (no power tail of index <= k)"
      inconclusive  otherwise (the two heavy statistics disagree, or no power tail of index
                    >= light_index is excluded)
    db/du is the growth of the robust exponential Q-Q slope b(u) across thresholds from the
    trend_quantile_range[0] quantile to the top k_min values (default; or trend_quantile_range
    when given) (exp_qq_trend, robust bootstrap se); xi is the peaks-over-threshold GPD shape at
    gpd_quantile with its asymptotic interval (1 + xi)/sqrt(k) (no bootstrap, to stay fast;
    regular where it matters, near xi = 0).
    Why both: xi -> 0 for the whole Gumbel domain (normal, exponential AND lognormal), so
    xi alone cannot place the exponential boundary. The exponential is memoryless: its
    excesses look the same over every threshold, so b(u) is exactly flat, whereas a
    lognormal's b(u) grows at every observable threshold (and its fitted xi is positive)
    and a normal's or bounded law's falls (xi < 0). Requiring both keeps the exponential
    out of "heavy". The Q-Q slope, not the mean excess, carries the trend because the
    mean excess is infinite for xi >= 1 and erratic for xi >= 1/2 (Levy, Cauchy, Pareto
    alpha < 2).
    Why light names an index: a power tail of large index looks exponential,
    or lighter, up to some threshold. Student-t(10)'s mean excess falls until u = sqrt(10) (the
    0.995 quantile) and only then grows; at 30,000 draws its b(u) is as flat as an exponential's.
    No finite sample excludes every power tail; it excludes those whose b(u) would have grown
    faster than it did over its thresholds. The Student t is the power tail that looks most
    exponential at a given index (its body is normal), so its db/du (power_tail_trend, on the
    law's quantiles) sets k. At 30,000 draws a normal sample excludes every index up to the
    resolved ~11, an exponential or Gumbel one about 6 (light up to ~6: a t(10) sample reads the
    same and is light up to ~6 too, which is what it is), a t(5) sample at most ~4.7.
    Every statistic here is invariant to x -> a x + b, a > 0.
    The Student-t reference (resolved_index, the power_tail_trend grid and the point at k) depends
    on n and the thresholds only: `memo(fn, **kw)` returns fn(**kw), perhaps kept from before (the
    pipeline passes its disk cache, so a second sample of the same size simulates nothing); None
    computes it here, the grid once per process.
    """
    a = _sample(x, min_n=500)
    memo = memo or _call
    z = _norm_ppf(0.5 + level / 2)
    if trend_quantile_range is None:
        trend_quantile_range = (0.90, 1 - min(k_min, a.size // 20) / a.size)
    tops = _tops(a, trend_quantile_range, 15, n_boot, seed)
    qq = _trend("exp Q-Q slope", _qq_slopes, tops, level)
    me = _trend("mean excess", _mean_excesses, tops, level)
    g = gpd_fit(a, gpd_quantile, n_boot=0, level=level)
    xi_lo = g.xi - z * g.xi_se_asymptotic if np.isfinite(g.xi_se_asymptotic) else g.xi
    grows, xi_pos = qq.interval[0] > 0, xi_lo > 0
    cap = memo(resolved_index, n=a.size, k_min=int(tops.ks[0]))
    # the exclusion is its own one-sided claim, at exclude_error: a t(df) sample reads "no power
    # tail of index <= k" with k >= df about that often (measured: tests/test_tails.py)
    z_ex = float(_norm_isf(exclude_error))
    k = excluded_index(qq.slope - flat_tol, a.size, tops.ks, cap, z_ex, memo)
    dfs, m_grid, sd_grid = _grid(a.size, tops.ks, cap, memo)
    on_grid = np.flatnonzero(dfs == max(k, 1.0))  # k = 0 or the cap: a row of the grid, as simulated
    if on_grid.size:
        m_k, sd_k = float(m_grid[on_grid[0]]), float(sd_grid[on_grid[0]])
    else:
        ks_t = tuple(int(v) for v in tops.ks)
        m_k, sd_k = memo(power_tail_trend, df=max(k, 1.0), n=a.size, ks=ks_t, spread=True)
    if grows and xi_pos:
        verdict = "heavy"
    elif k >= light_index and not (grows or xi_pos):
        verdict = "light"
    else:
        verdict = "inconclusive"
    reasons = (
        f"db/du {'>' if grows else 'not >'} 0 (lower bound {qq.interval[0]:+.3f})",
        f"xi {'>' if xi_pos else 'not >'} 0 (lower bound {xi_lo:+.3f})",
        f"db/du {qq.slope:+.3f} excludes every power tail of index <= {k:.3g}: a Student-t({max(k, 1.0):.3g}) sample "
        f"of this size shows {m_k:+.3f} +- {sd_k:.3f} over these thresholds, below {m_k - z_ex * sd_k:+.3f} with "
        f"probability {exclude_error:g} (a light call needs k >= {light_index:g})",
        f"thresholds reach the top {int(tops.ks[0])} values: power tails resolved up to index ~{cap:.3g}",
    )
    rule = _RULE.format(
        q_lo=trend_quantile_range[0],
        k_min=int(tops.ks[0]),
        q_gpd=gpd_quantile,
        level=level,
        k_light=light_index,
        ex=exclude_error,
        df_res=cap,
    )
    h = hill(a)
    k_gpd = g.n_exceed
    return TailReport(
        n=a.size,
        scale=tops.scale,
        verdict=verdict,
        rule=rule,
        reasons=reasons,
        level=level,
        qq_trend=qq,
        mean_excess=me,
        gpd=g,
        hill=h.at_k_star,
        hill_ks=(int(h.ks[0]), int(h.ks[-1])),
        pickands=pickands(a, max(k_gpd // 4, 1)),
        moment=moment_estimator(a, k_gpd),
        excluded=k,
    )
