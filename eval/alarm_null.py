"""The light-tailed null of the Goodhart alarm, built from the base pool's bulk.

Question the alarm asks of a point: *could a reward whose upper tail is no heavier than its own
bulk have given this proxy gain, with this optimizer at this knob?* The null answers it by
simulation, from the base pool's proxies only (never the utility):

* Centre each prompt's base proxies on the prompt's median and pool them. The *bulk* is
  everything up to the pooled quantile ``u = Q(q_tail)`` (0.9); it is kept exactly as observed
  (bounded, skewed or discrete bulks stay what they are).
* The *tail* beyond ``u`` is replaced by ``u + Exponential(s)``, with the exponential scale read
  from the bulk's own upper spacing, ``s = (Q(q_tail) - Q(q_bulk)) / log((1 - q_bulk) / (1 - q_tail))``
  (q_bulk = 0.75): the exponential whose survival passes through both quantiles. An exponential
  tail is the heaviest "light" tail (Kwa et al.: catastrophic Goodhart needs a tail heavier than
  any exponential), so the null is the boundary: a Gaussian, uniform or Weibull(k > 1) reward is
  lighter than its null, an exponential or Gumbel one sits on it, and a Student t, lognormal,
  Pareto, Levy or Weibull(k < 1) one is heavier.
* Each replicate redraws every prompt's tail samples (as many as the prompt has beyond u) and
  reruns the *same optimizer at the same knob* (best-of-n at n, the tilt at beta) on that
  pool. The replicates' proxy gains are the null distribution of the observed gain: the
  p-value is (1 + #{null >= observed}) / (B + 1).

The replicates of one pool share their draws across knobs (common random numbers along the
curve) and are seeded, so the alarm is a deterministic function of the pool.

For a policy given only as samples (a trained one), no optimizer can be rerun; the null then
bounds the gain of *any* policy at the KL by Donsker-Varadhan with the null's cumulant
generating function (bulk empirical + exponential tail), ``null_dv_bound``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Q_TAIL = 0.9
Q_BULK = 0.75


def dv_bound(k: float, cgf: Callable[[float], float], lam_range: tuple[float, float] = (1e-8, 1e8)) -> float:
    """inf over lambda > 0 of (k + cgf(lambda)) / lambda, by a bounded search in log lambda.
    The most mean gain any policy at KL k can have over a base whose centred reward has this CGF."""
    from scipy import optimize  # (here: importing the alarm's rule or version needs no scipy)

    if k <= 0:
        return 0.0

    def f(t: float) -> float:
        lam = math.exp(t)
        return (k + cgf(lam)) / lam

    lo, hi = math.log(lam_range[0]), math.log(lam_range[1])
    grid = np.linspace(lo, hi, 161)  # a coarse scan first: the objective need not be unimodal numerically
    vals = [f(t) for t in grid]
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(f, bounds=(a, b), method="bounded", options={"xatol": 1e-10})
    return float(min(res.fun, vals[i]))


def tail_scale(centred: np.ndarray, q_tail: float = Q_TAIL, q_bulk: float = Q_BULK) -> tuple[float, float]:
    """(u, s): the tail threshold Q(q_tail) and the exponential scale through Q(q_bulk) and Q(q_tail)."""
    x = np.asarray(centred, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    lo, u = np.quantile(x, [q_bulk, q_tail])
    s = (u - lo) / math.log((1 - q_bulk) / (1 - q_tail))
    if not s > 0:  # a discrete or tied bulk (VADER scores): the spacing from the median instead
        s = (u - np.quantile(x, 0.5)) / math.log(0.5 / (1 - q_tail))
    if not s > 0:  # a bulk that is one value: its spread, else nothing to redraw (scale 0)
        s = float(np.std(x))
    return float(u), float(s)


ME_LEVELS = (0.9, 0.95, 0.975, 0.99)


def mean_excess_slope(centred: np.ndarray, levels: tuple[float, ...] = ME_LEVELS, total: int | None = None) -> float:
    """Least-squares slope of the mean excess e(t) = E[X - t | X > t] against t, over thresholds
    at these quantiles, in units where the first threshold's e is 1. An exponential tail has
    slope 0, a Gaussian or bounded one a negative slope, a power tail a positive one
    (Pareto(alpha): 1 / (alpha - 1)). ``total``: the sample is only the top of a sample of this
    size (the levels are of the whole); only values above every threshold are needed."""
    x = np.asarray(centred, dtype=np.float64).ravel()
    if x.size < 2:  # nothing above the threshold (a small or discrete pool): no slope to read
        return float("nan")
    M = x.size if total is None else int(total)
    lv = np.clip((np.asarray(levels) * (M - 1) - (M - x.size)) / max(x.size - 1, 1), 0.0, 1.0)
    t = np.quantile(x, lv)  # (a selection, not a sort: a null replicate is 199 of these)
    e = np.full(t.size, np.nan)
    for i, ti in enumerate(t):  # ascending thresholds: each keeps a subset of the one before
        x = x[x > ti]
        if x.size:
            e[i] = np.mean(x - ti)
    ok = np.isfinite(e)
    if ok.sum() < 2 or not e[0] > 0:
        return float("nan")
    tt, ee = t[ok] / e[0], e[ok] / e[0]
    return float(np.polyfit(tt, ee, 1)[0])


def _tail_draws(rng: np.random.Generator, start: float, scale: float, n_null: int, k: int) -> np.ndarray:
    """(n_null, k): start + Exponential(scale) draws, each row ascending (formed and sorted in place)."""
    out = rng.standard_exponential((n_null, k))  # times scale: rng.exponential(scale)'s draws, faster
    out *= scale
    out += start
    out.sort(axis=1)
    return out


@dataclass
class LightNull:
    """Simulated light-tailed versions of one base pool (P, N) of proxies."""

    sorted_pool: np.ndarray  # (P, N) each prompt's base proxies, ascending
    med: np.ndarray  # (P,) per-prompt medians
    u: float  # tail threshold (centred)
    s: float  # exponential scale of the null tail
    k: np.ndarray  # (P,) number of tail samples per prompt
    tails: list[np.ndarray] = field(default_factory=list)  # per prompt: (B, k_x) ascending null tail draws
    me_slope_null: np.ndarray = field(default_factory=lambda: np.empty(0))  # (B,) mean-excess slopes
    me_slope: float = float("nan")  # the base pool's own
    _cgf_values: dict[float, float] = field(default_factory=dict, repr=False, compare=False)  # cgf memo
    _pool_means: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)  # per prompt

    @classmethod
    def from_pool(
        cls, base_proxy: np.ndarray, n_null: int = 199, seed: int = 0, q_tail: float = Q_TAIL, q_bulk: float = Q_BULK
    ) -> LightNull:
        b = np.atleast_2d(np.asarray(base_proxy, dtype=np.float64))
        srt = np.sort(b, axis=1)
        med = np.median(b, axis=1)
        c = srt - med[:, None]
        u, s = tail_scale(c, q_tail, q_bulk)
        k = (c > u).sum(1)
        rng = np.random.default_rng(seed)
        tails = [_tail_draws(rng, med[x] + u, max(s, 1e-300), n_null, int(k[x])) for x in range(len(k))]
        return cls(srt, med, u, s, k, tails)

    @property
    def n_null(self) -> int:
        return self.tails[0].shape[0] if self.tails else 0

    def tail_p(self) -> tuple[float, float]:
        """(slope, p): the base pool's mean-excess slope over its top 10% and its p-value under the
        null (small: a tail heavier than exponential). Only the tail samples enter (above every
        threshold), so each replicate costs its tail only."""
        c = self.sorted_pool - self.med[:, None]
        M = c.size
        top = c[c > self.u]
        if not self.me_slope == self.me_slope:
            self.me_slope = mean_excess_slope(top, total=M)
            self.me_slope_null = np.array(
                [
                    mean_excess_slope(np.concatenate([t[j] - self.med[x] for x, t in enumerate(self.tails)]), total=M)
                    for j in range(self.n_null)
                ]
            )
        if not math.isfinite(self.me_slope) or self.n_null == 0:
            return self.me_slope, float("nan")
        return self.me_slope, float((1 + np.sum(self.me_slope_null >= self.me_slope)) / (self.n_null + 1))

    # ---- gains of the optimizers on the null replicates: (B,) each, averaged over prompts ----
    def _rows(self):
        N = self.sorted_pool.shape[1]
        for x in range(self.sorted_pool.shape[0]):
            kx = int(self.k[x])
            yield self.sorted_pool[x, : N - kx], self.tails[x]

    def bon_gains(self, p: np.ndarray) -> np.ndarray:
        """p: (N,) best-of-n order weights on an ascending pool (eval.bon.order_weights)."""
        out = 0.0
        N = p.size
        for bulk, tail in self._rows():
            kb = bulk.size
            top = tail @ p[kb:] if tail.shape[1] else 0.0
            mean = (bulk.sum() + tail.sum(1)) / N
            out = out + bulk @ p[:kb] + top - mean
        return np.asarray(out, dtype=np.float64) / self.sorted_pool.shape[0]

    def tilt_gains(self, beta: float) -> np.ndarray:
        """Gain of the tilt softmax(r / beta) on each null replicate (the bulk's part of the
        normalizer computed once; only the redrawn tail is exponentiated per replicate, in one
        buffer: the (B, k) tail is the alarm's largest array, read at every knob of a curve).
        A weight below exp(NEGLIGIBLE) of its replicate's largest is left at 0 without its exp
        (a heavy pool's null at a small beta: most redrawn values; libm's exp is the cost)."""
        out = 0.0
        for x, (bulk, tail) in enumerate(self._rows()):
            B = tail.shape[0]
            mb = bulk[-1] / beta if bulk.size else -np.inf
            mt = tail[:, -1] / beta if tail.shape[1] else np.full(B, -np.inf)
            m = np.maximum(mb, mt)  # (B,) the largest log weight of each replicate: its weight is 1
            eb = np.exp(bulk / beta - mb) if bulk.size else np.zeros(0)
            zb, wb = eb.sum(), eb @ bulk
            scale = np.exp(mb - m)
            d = np.divide(tail, beta)  # tail / beta - m, formed in place
            d -= m[:, None]
            live = d > NEGLIGIBLE
            if live.all():
                et = np.exp(d, out=d)
            else:  # each row is ascending: its live weights are one run at its end
                et = np.zeros_like(d)
                np.exp(d, out=et, where=live)
            z = zb * scale + et.sum(1)
            et *= tail
            mean_t = (wb * scale + np.sum(et, axis=1)) / z
            out = out + mean_t - self._means(x, bulk, tail)
        return np.asarray(out, dtype=np.float64) / self.sorted_pool.shape[0]

    def _means(self, x: int, bulk: np.ndarray, tail: np.ndarray) -> np.ndarray:
        """(B,) prompt x's pool mean on each replicate: the same at every knob, summed once."""
        if x not in self._pool_means:
            self._pool_means[x] = (bulk.sum() + tail.sum(1)) / self.sorted_pool.shape[1]
        return self._pool_means[x]

    # ---- any policy at KL k: the Donsker-Varadhan bound of the null ----
    def cgf(self):
        """The null's centred CGF over the pooled, centred pool: bulk as observed plus an
        exponential(s) tail beyond u with the observed tail mass; +inf for lambda >= 1 / s."""
        from scipy.special import logsumexp

        c = (self.sorted_pool - self.med[:, None]).ravel()
        bulk = c[c <= self.u]
        pt = 1.0 - bulk.size / c.size
        mean = (bulk.sum() / c.size) + pt * (self.u + self.s)

        memo = self._cgf_values  # the pool's CGF does not depend on the KL: dv_bound's scan grid is
        # the same at every knob of a curve, so a pool shared by its points evaluates it once

        def f(lam: float) -> float:
            if self.s > 0 and lam * self.s >= 1:
                return math.inf
            v = memo.get(lam)
            if v is None:
                parts = [logsumexp(lam * bulk) - math.log(c.size)]
                if pt > 0:
                    parts.append(math.log(pt) + lam * self.u - math.log1p(-lam * self.s))
                v = memo[lam] = float(np.logaddexp.reduce(parts)) - lam * mean
            return v

        return f

    def dv_bound(self, k: float) -> float:
        hi = 1.0 / self.s if self.s > 0 else 1e8
        return dv_bound(k, self.cgf(), (1e-8 * hi, hi * (1 - 1e-9)))


NEGLIGIBLE = -64.0
"""Log weight (relative to a replicate's largest, whose weight is 1) below which tilt_gains drops
a weight: exp(-64) < 1.7e-28, so even 2^31 of them move the normalizer (>= 1) by less than 4e-19,
under half an ulp, and the weighted mean by less than 4e-19 times the largest |reward|."""


def p_value(observed: float, null: np.ndarray) -> float:
    """(1 + #{null >= observed}) / (B + 1): a valid Monte Carlo p-value. Values equal up to
    rounding count as ties (best-of-1 is the base itself: its gain is 0 on the pool and 1e-17 on
    a replicate, and must read p = 1, not 1 / (B + 1))."""
    null = np.asarray(null, dtype=np.float64)
    tol = 1e-12 * max(1.0, abs(float(observed)))
    return float((1 + np.sum(null >= observed - tol)) / (null.size + 1))


def excess_lower(observed: float, null: np.ndarray, alpha: float) -> float:
    """Share of the observed gain beyond the null's (1 - alpha) quantile: > 0 exactly when the
    gain is significant at level alpha (up to Monte Carlo ties), near 1 when the tail carries it.
    A gain that is 0 up to rounding (best-of-1: 1e-17 on the pool) has no share: NaN, as p_value
    counts it a tie."""
    if not observed > 1e-12:
        return float("nan")
    q = float(np.quantile(np.asarray(null, dtype=np.float64), 1 - alpha, method="higher"))
    return (observed - q) / observed
