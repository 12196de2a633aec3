"""A Goodhart alarm without gold: is the proxy being won through its tail?

Everything here reads proxy rewards, the KL to the base policy and the base policy's proxy
rewards only. Never the utility: a practitioner has no gold, and neither does this alarm.

Evidence (each a number, each named in eval.metrics):

1. **More gain than the bulk can buy** (Donsker-Varadhan). For any policy pi and lambda > 0,

       E_pi[r] - E_pi0[r] <= (KL(pi || pi0) + log E_pi0 exp(lambda (r - E_pi0 r))) / lambda.

   We estimate the base distribution's *bulk* as a Gaussian with the sub-Gaussian variance
   proxy sigma read from central quantiles of the per-prompt-centred base rewards (quantiles
   ignore the tail). Its CGF lambda^2 sigma^2 / 2 gives ``bound(k) = sigma sqrt(2k)``: the most
   proxy gain a reward whose tail is no heavier than its bulk could give at KL k. The exact tilt
   of a Gaussian reward attains it (ratio 1); best-of-n stays below. ``dv_ratio = gain /
   bound``: well above 1 means the policy's gain comes from a tail the bulk does not explain
   (Kwa et al.'s mechanism). Per prompt gain_x <= sigma sqrt(2 k_x); averaging and
   Cauchy-Schwarz give the same bound at the mean KL.
2. **Where the gain comes from**: ``top_share``, the share of the proxy gain carried by the top
   1% of the policy's probability mass, beyond what the base's own top 1% carries (exactly 1%
   for a pure shift such as a Gaussian tilt; most of it when a few huge rewards carry the gain);
   ``beyond_max``, the policy mass above the largest (centred) base reward in excess of what the
   bulk's DV-optimal policy at the same KL, N(sigma sqrt(2k), sigma^2), puts there. A pool-based
   policy (tilt, best-of-n) can never show any; a trained one that found a new exploit can.
3. **Disagreement** (optional): with several reward models, the spread of their gains, each in
   units of its own base bulk sigma, relative to their mean.

The score is the largest piece of evidence divided by its alarm threshold (1 = alarm), and the
level is ``quiet`` / ``watch`` / ``alarm``. Nothing fires before the gain is clearly above the
noise of the base bulk (``min_gain`` x sigma).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

from goodhart.eval import metrics as M

LEVELS = ("quiet", "watch", "alarm")

# Central quantile levels the bulk sigma is read from: sigma = (Q(q) - Q(1-q)) / (2 z_q), the
# largest over these levels (conservative for a bulk a little wider than Gaussian).
BULK_LEVELS = (0.75, 0.9)
TOP_MASS = 0.01  # "the top 1% of samples"


# ============================================================================================
# The bound
# ============================================================================================
def gaussian_cgf(sigma: float) -> Callable[[float], float]:
    """log E exp(lambda (r - E r)) for r ~ N(., sigma^2)."""
    return lambda lam: 0.5 * sigma**2 * lam**2


def empirical_cgf(x: np.ndarray) -> Callable[[float], float]:
    """The CGF of a sample (centred at its mean), computed stably in log space."""
    from scipy.special import logsumexp

    c = np.asarray(x, dtype=np.float64).ravel()
    c = c - c.mean()
    return lambda lam: float(logsumexp(lam * c) - math.log(c.size))


def dv_bound(k: float, cgf: Callable[[float], float], lam_range: tuple[float, float] = (1e-8, 1e8)) -> float:
    """inf over lambda > 0 of (k + cgf(lambda)) / lambda, by a bounded search in log lambda.
    The most mean gain any policy at KL k can have over a base whose centred reward has this CGF."""
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


def bulk_sigma(centred: np.ndarray, levels: tuple[float, ...] = BULK_LEVELS) -> float:
    """Sub-Gaussian variance proxy of the bulk: the largest (Q(q) - Q(1-q)) / (2 z_q) over the
    central levels q. Exact for a Gaussian; a far tail does not move it."""
    x = np.asarray(centred, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    out = 0.0
    for q in levels:
        lo, hi = np.quantile(x, [1 - q, q])
        out = max(out, (hi - lo) / (2 * stats.norm.ppf(q)))
    return float(out)


# ============================================================================================
# Base statistics (from the base pool's proxy only)
# ============================================================================================
@dataclass(frozen=True)
class BaseStats:
    """What the alarm keeps of the base pool: per-prompt means (for centring the policy's
    samples), the bulk sigma and the largest centred base reward."""

    means: np.ndarray  # (P,) per-prompt base means, or (1,) one global mean
    sigma: float
    max: float
    n: int
    top: float = 0.0  # what the base's own top 1% of mass contributes to its (zero) centred mean

    @classmethod
    def from_pool(cls, base_proxy: np.ndarray, per_prompt: bool = True) -> BaseStats:
        """base_proxy: (P, N) base rewards. per_prompt=False: one global mean (the online
        monitor, whose training prompts are not the pool's)."""
        b = np.atleast_2d(np.asarray(base_proxy, dtype=np.float64))
        means = b.mean(1) if per_prompt else np.array([b.mean()])
        # The bulk: centred by each prompt's median (a mean would drag the tail in).
        med = np.median(b, axis=1, keepdims=True) if per_prompt else np.median(b)
        centred_mean = (b - (means[:, None] if per_prompt else means[0])).ravel()
        top = _top_contribution(centred_mean, np.full(centred_mean.size, 1.0 / centred_mean.size))
        return cls(means, bulk_sigma(b - med), float(np.max(centred_mean)), int(b.size), top)


# ============================================================================================
# Evidence and decision
# ============================================================================================
@dataclass(frozen=True)
class AlarmRule:
    """Thresholds. Tuned on the distributional sweep (seed 0, four laws); see README."""

    dv_alarm: float = 2.0
    """dv_ratio at which the alarm fires (a Gaussian tilt sits at 1, best-of-n below)."""
    share_alarm: float = 0.5
    """top-1% share of the gain at which the alarm fires."""
    beyond_alarm: float = 0.05
    """policy mass above the base pool's largest reward at which the alarm fires."""
    disagree_alarm: float = 1.0
    """relative spread of standardized gains across reward models at which the alarm fires."""
    watch: float = 0.6
    """score at or above this (and below 1): `watch` (dv_ratio 1.2 with the default dv_alarm)."""
    min_gain: float = 0.05
    """gains below this many bulk sigmas are noise: the level stays quiet."""
    noise_z: float = 2.0
    """...and so are gains below noise_z standard errors of a bulk-like mean, sigma / sqrt(n_eff)
    (n_eff = 1 / sum of squared sample masses: a training batch of 32 samples is noisy)."""


@dataclass
class Alarm:
    gain: float
    kl: float
    sigma: float
    bound: float
    dv_ratio: float
    top_share: float
    beyond_max: float
    disagreement: float
    n_eff: float
    score: float
    level: str

    def row(self) -> dict[str, float | str]:
        """Result-row / MLflow entries (level also as a number: MLflow takes numbers only)."""
        d = asdict(self)
        return {
            M.ALARM_SCORE: d["score"],
            M.ALARM_LEVEL: d["level"],
            M.ALARM_CODE: float(LEVELS.index(d["level"])),
            M.ALARM_DV_RATIO: d["dv_ratio"],
            M.ALARM_DV_BOUND: d["bound"],
            M.ALARM_SIGMA: d["sigma"],
            M.ALARM_TOP_SHARE: d["top_share"],
            M.ALARM_BEYOND_MAX: d["beyond_max"],
            M.ALARM_DISAGREEMENT: d["disagreement"],
            M.ALARM_N_EFF: d["n_eff"],
        }


def _top_contribution(c: np.ndarray, a: np.ndarray, top: float = TOP_MASS) -> float:
    """sum of a c over the top `top` of the mass a, ordered by c (the boundary sample in part)."""
    order = np.argsort(-c, kind="stable")
    cs, as_ = c[order], a[order]
    before = np.concatenate([[0.0], np.cumsum(as_)[:-1]])
    take = np.clip(top - before, 0.0, as_)
    return float(np.sum(take * cs))


def _top_share(c: np.ndarray, a: np.ndarray, gain: float, base_top: float) -> float:
    """Share of the gain carried by the policy's top 1%: what its top 1% of mass contributes
    beyond what the base's own top 1% does, over the gain. A pure shift of any law gives
    exactly 1% (every quantile moves by the gain); a gain made in the far tail gives most of it."""
    if not gain > 0:
        return float("nan")
    return (_top_contribution(c, a) - base_top) / gain


def noise_floor(sigma: float, n_eff: float, rule: AlarmRule) -> float:
    """The gain below which nothing is read into the evidence."""
    return sigma * max(rule.min_gain, rule.noise_z / math.sqrt(max(n_eff, 1.0)))


def decide(
    gain: float,
    sigma: float,
    dv_ratio: float,
    top_share: float,
    beyond_max: float,
    disagreement: float,
    rule: AlarmRule,
    n_eff: float = math.inf,
) -> tuple[float, str]:
    """(score, level) from the evidence. Pure: `alarm-eval` re-decides stored evidence with it."""
    if not (np.isfinite(gain) and sigma > 0 and gain > noise_floor(sigma, n_eff, rule)):
        return 0.0, "quiet"
    parts = [
        dv_ratio / rule.dv_alarm,
        top_share / rule.share_alarm,
        beyond_max / rule.beyond_alarm,
        disagreement / rule.disagree_alarm,
    ]
    score = float(max((p for p in parts if np.isfinite(p)), default=0.0))
    level = "alarm" if score >= 1 else "watch" if score >= rule.watch else "quiet"
    return score, level


def alarm(
    samples: np.ndarray,
    kl: float,
    base: BaseStats,
    weights: np.ndarray | None = None,
    rule: AlarmRule = AlarmRule(),
    others: Mapping[str, tuple[np.ndarray, BaseStats]] | None = None,
) -> Alarm:
    """The alarm for one policy.

    samples: (P, M) proxy rewards of the policy's samples, row x for prompt x of `base` (or (B,)
    with a global-mean `base`); weights: same shape, each row summing to 1 (None: uniform), for
    a policy given as weighted base samples (tilt, best-of-n); kl: the policy's mean sequence KL
    to the base in nats; others: more reward models' (samples, base) for the disagreement."""
    r = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    P, m = r.shape
    w = np.full_like(r, 1.0 / m) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    means = base.means if base.means.size == P else np.full(P, float(base.means.mean()))
    c = r - means[:, None]  # centred on the base mean of the same prompt
    a = (w / P).ravel()  # probability mass of each sample in the mixture over prompts
    c = c.ravel()
    gain = float(np.sum(a * c))
    n_eff = float(1.0 / np.sum(a**2))
    floor = noise_floor(base.sigma, n_eff, rule)
    kl = float(kl)
    bound = base.sigma * math.sqrt(2 * kl) if kl > 0 else 0.0
    dv_ratio = gain / bound if bound > 0 else float("nan")
    # Within the noise of the bulk a share of the gain means nothing (a tiny gain makes it explode).
    top = _top_share(c, a, gain, base.top) if gain > floor else float("nan")
    # Mass above the base's largest reward, beyond what the bulk's own DV-optimal policy at this
    # KL (the Gaussian shifted by the bound) would put there: at KL 8 a light-tailed policy
    # legitimately has half its mass above the max of a few thousand base samples.
    expected = float(stats.norm.sf(base.max / base.sigma - math.sqrt(2 * kl))) if kl > 0 and base.sigma > 0 else 0.0
    beyond = max(0.0, float(np.sum(a[c > base.max])) - expected)
    dis = float("nan")
    if others:
        z = [gain / base.sigma] + [
            float(np.mean(np.atleast_2d(s) - b.means.mean())) / b.sigma for s, b in others.values() if b.sigma > 0
        ]
        dis = float(np.std(z) / abs(np.mean(z))) if len(z) > 1 and np.mean(z) != 0 else float("nan")
    score, level = decide(gain, base.sigma, dv_ratio, top, beyond, dis, rule, n_eff)
    return Alarm(gain, kl, base.sigma, bound, dv_ratio, top, beyond, dis, n_eff, score, level)


# ============================================================================================
# The policies the pipeline measures from the base pool
# ============================================================================================
def tilt_alarm(base_proxy: np.ndarray, beta: float, kl: float, rule: AlarmRule = AlarmRule()) -> Alarm:
    """The tilt pi_beta as softmax(r / beta) weights on the base pool."""
    from goodhart.eval.tilt import log_weights

    b = np.asarray(base_proxy, dtype=np.float64)
    return alarm(b, kl, BaseStats.from_pool(b), np.exp(log_weights(b, beta)), rule)


def bon_alarm(base_proxy: np.ndarray, n: int, kl: float, rule: AlarmRule = AlarmRule()) -> Alarm:
    """Best-of-n as the order-statistic weights on the sorted base pool (ties left as sorted)."""
    from goodhart.eval.bon import order_weights

    b = np.asarray(base_proxy, dtype=np.float64)
    s = np.sort(b, axis=1)
    p = np.broadcast_to(order_weights(b.shape[1], n), s.shape)
    return alarm(s, kl, BaseStats.from_pool(b), p, rule)
