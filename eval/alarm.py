"""A Goodhart alarm without gold: is the proxy being won through its tail?

Everything here reads proxy rewards, the KL to the base policy and the base policy's proxy
rewards only. Never the utility: a practitioner has no gold, and neither does this alarm.

The alarm is a calibrated test (docs/alarm.md). Its null hypothesis: *the base proxy's upper
tail is no heavier than an exponential fitted to its own bulk* (eval/alarm_null.py builds it
from the base pool: bulk as observed, tail beyond the 0.9 quantile redrawn from that
exponential). ``alarm`` means the null is rejected at level ``AlarmRule.alpha`` (default
0.05; ``significant``) *and* at least ``AlarmRule.share`` (0.8, set on the dev halves of the
Gaussian and the text bench) of the gain is carried by samples beyond the bulk's 0.9 quantile
(``tail_share``: the gain is made in the tail the test found heavy, not by moving the bulk);
``watch`` means significant alone.

Two tests of the null, each at alpha / 2 when both are available (Bonferroni): the base pool's
mean-excess slope against its null replicates (``tail_p``: the tail's shape, whatever the
optimizer), and the point's proxy gain, compared with:

* **pool-based policies** (tilt, best-of-n: ``tilt_alarm``, ``bon_alarm``): the same optimizer at
  the same knob rerun on each null replicate of the pool -- the exact null distribution of the
  gain, whatever the bulk's shape;
* **a policy given as samples** (``alarm``, the online monitor): the Donsker-Varadhan bound of
  the null, ``sup`` of the gain of any policy at this KL over a reward with the null's
  cumulant generating function, with the gain's standard error (one-sided z test).

Evidence in each row (each a number named in eval.metrics; 2, 3 and 4's ``tail_p`` decide):

1. ``dv_ratio``: gain / (sigma_bulk sqrt(2 KL)), the Gaussian-bulk Donsker-Varadhan ratio (the
   old rule, and the bench's baseline). For any policy pi and lambda > 0,
   E_pi[r] - E_pi0[r] <= (KL(pi || pi0) + log E_pi0 exp(lambda (r - E_pi0 r))) / lambda; with the
   bulk's Gaussian CGF the bound is sigma sqrt(2k). It grows slowly for moderate tails and
   exponential tails reach 1.5 and more, which is why it is not the test any more; nor the
   effect size (it was, as ``tau``, until it missed on a bounded text utility: a three-peaked
   VADER bulk has a wide central-quantile sigma, so gains stayed under the Gaussian bound while
   the utility turned).
2. ``p_value`` and ``excess`` (the share of the gain beyond the null's 1 - alpha quantile).
3. ``tail_share``: the share of the gain carried by samples beyond the bulk's 0.9 quantile (the
   base's own share subtracted): the effect size ``alarm`` needs (``share``). It reads the
   policy's samples against the bulk's own quantile, so it assumes no shape of the bulk.
4. ``me_slope`` / ``tail_p``: the base pool's mean-excess slope over its top 10% and its p-value
   under the null (0 for an exponential tail, 1/(alpha-1) for Pareto(alpha)): the tail's kind,
   independent of any optimizer. It says *whether* the tail is heavy, the tail share *when*
   the gain is made there; whenever the base was built with null replicates (``n_null`` > 0:
   every base the pipeline builds).
5. ``top_share``, ``beyond_max``, ``disagreement`` as before (descriptive).

Nothing fires before the gain is clearly above the noise of the base bulk (``min_gain`` x sigma,
``noise_z`` standard errors), nor, for a policy given as samples, before it is above what the
base policy's own batches of the same shape reach (``noise_p`` < alpha: resampled from the pool;
on a proxy of infinite variance the bulk-based floor alone let the base itself read ``alarm`` at
8-17% of checks, docs/alarm.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from goodhart.eval import metrics as M
from goodhart.eval.alarm_null import LightNull, excess_lower, p_value
from goodhart.eval.alarm_null import (
    dv_bound as dv_bound,  # its home is alarm_null (which alarm imports); public here too
)

LEVELS = ("quiet", "watch", "alarm")

VERSION = 4
"""The alarm rule's version, kept in every result row (``alarm/version``): a finished point whose
alarm was computed under another version is stale and runs again (pipeline/sweeps/point.py
stale_reason). 1: DV-ratio thresholds; 2: the calibrated test with tau x the Gaussian bulk's DV
bound; 3: the tail share as the effect size, every base with the null's replicates; 4: a policy
given as samples needs its gain beyond the base policy's own batch gains (``noise_p``). Bump it with
any change of what the alarm says about the same pool (tests/test_alarm.py pins its behaviour)."""

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
    samples), the bulk sigma, the largest centred base reward and the light-tailed null."""

    means: np.ndarray  # (P,) per-prompt base means, or (1,) one global mean
    sigma: float
    max: float
    n: int
    top: float = 0.0  # what the base's own top 1% of mass contributes to its (zero) centred mean
    null: LightNull | None = None  # eval/alarm_null.py
    tail_base: float = 0.0  # what the base's own samples beyond the null's u contribute (centred)
    tail: tuple[float, float] | None = None  # (mean-excess slope, its p-value under the null)
    centred: np.ndarray | None = None  # (P, N) base rewards minus their prompt's mean ((1, P N): global)

    @classmethod
    def from_pool(
        cls, base_proxy: np.ndarray, per_prompt: bool = True, n_null: int = 0, null_seed: int = 0
    ) -> BaseStats:
        """base_proxy: (P, N) base rewards. per_prompt=False: one global mean (the online
        monitor, whose training prompts are not the pool's). n_null: null replicates to draw
        (0: only the null's DV bound, for policies given as samples)."""
        b = np.atleast_2d(np.asarray(base_proxy, dtype=np.float64))
        means = b.mean(1) if per_prompt else np.array([b.mean()])
        # The bulk: centred by each prompt's median (a mean would drag the tail in).
        med = np.median(b, axis=1, keepdims=True) if per_prompt else np.median(b)
        centred_mean = (b - (means[:, None] if per_prompt else means[0])).ravel()
        top = _top_contribution(centred_mean, np.full(centred_mean.size, 1.0 / centred_mean.size))
        null = LightNull.from_pool(b if per_prompt else b.reshape(1, -1), n_null, null_seed)
        beyond_u = (b - np.median(b, axis=1, keepdims=True) if per_prompt else b - np.median(b)).ravel() > null.u
        tail_base = float(np.sum(centred_mean[beyond_u])) / centred_mean.size
        tail = null.tail_p() if n_null else None
        centred = centred_mean.reshape(b.shape if per_prompt else (1, -1))
        return cls(
            means, bulk_sigma(b - med), float(np.max(centred_mean)), int(b.size), top, null, tail_base, tail, centred
        )

    def noise_p(self, gain: float, shape: tuple[int, int], rule: AlarmRule) -> float:
        """p-value of a sampled policy's gain against the base policy's own: the gains of
        ``rule.n_noise`` batches of the same shape drawn from the base pool (m samples of each
        prompt for a (P, m) batch on the pool's prompts, else P m samples of the whole pool).
        A batch mean of an infinite-variance proxy beats the bulk-based noise floor by chance;
        this does not. NaN without the pool's samples."""
        c = self.centred
        if c is None or not np.isfinite(gain):
            return float("nan")
        P, m = shape
        rng = np.random.default_rng(rule.null_seed + 1)
        k, per = rule.n_noise, c.shape[0] == P and self.means.size == P
        flat = c.ravel()
        block = max(1, 4_000_000 // max(P * m, 1))  # draws held at once
        gains = []
        for start in range(0, k, block):
            b = min(block, k - start)
            if per:
                idx = rng.integers(0, c.shape[1], size=(b, P, m))
                gains.append(c[np.arange(P)[None, :, None], idx].mean((1, 2)))
            else:
                gains.append(flat[rng.integers(0, flat.size, size=(b, P * m))].mean(1))
        g = np.concatenate(gains)
        return float((1 + np.sum(g >= gain)) / (k + 1))

    @classmethod
    def for_rule(cls, base_proxy: np.ndarray, rule: AlarmRule, per_prompt: bool = True) -> BaseStats:
        """from_pool with the rule's null replicates (n_null, null_seed), as every base the
        pipeline builds has them: the base pool's tail-shape test then joins the gain test."""
        return cls.from_pool(base_proxy, per_prompt, n_null=rule.n_null, null_seed=rule.null_seed)


# ============================================================================================
# Evidence and decision
# ============================================================================================
@dataclass(frozen=True)
class AlarmRule:
    """The test's level and its one effect size; the DV-ratio thresholds of the old rule are
    kept for the baseline and for descriptive use only (they decide nothing)."""

    alpha: float = 0.05
    """False-alarm rate under the light-tailed null: `alarm` needs the null rejected at level
    alpha (``significant``: by the point's gain, or by the base pool's tail shape; each of the
    two tests at alpha / 2 when both are available)."""
    share: float = 0.8
    """...and at least this share of the gain to be carried by samples beyond the bulk's 0.9
    quantile (tail_share >= share: the tail's part is material, not only detectable; a shift
    of the bulk gives a small share). Chosen on the dev halves only (docs/alarm.md): the
    largest dev recall with dev false alarms <= 0.05 on both the Gaussian bench and the VADER
    text bench (pool seed 0). It replaced tau x the Gaussian bulk's DV bound, which assumed a
    Gaussian bulk and missed on the text utility."""
    n_null: int = 199
    """Null replicates per pool (p-values resolve 1 / (n_null + 1))."""
    null_seed: int = 0
    """Seed of the null replicates (the alarm is a deterministic function of the pool)."""
    n_noise: int = 1999
    """Base-policy batches behind ``noise_p`` (a policy given as samples). Their 1 - alpha
    quantile is read once per pool and batch shape, so it must be steady: with 199 the base
    itself read `alarm` at up to 12% of checks on an unlucky pareto(1.5) pool."""
    dv_alarm: float = 2.0
    """(baseline only) dv_ratio at which the old rule fired."""
    share_alarm: float = 0.5
    """(descriptive) top-1% share of the gain the old rule fired at."""
    beyond_alarm: float = 0.05
    """(descriptive) policy mass above the base pool's largest reward the old rule fired at."""
    disagree_alarm: float = 1.0
    """(descriptive) relative spread of standardized gains across reward models."""
    watch: float = 0.6
    """(baseline only) dv_ratio / dv_alarm from which the old rule said `watch`."""
    min_gain: float = 0.05
    """gains below this many bulk sigmas are noise: the level stays quiet."""
    noise_z: float = 2.0
    """...and so are gains below noise_z standard errors of a bulk-like mean, sigma / sqrt(n_eff)
    (n_eff = 1 / sum of squared sample masses: a training batch of 32 samples is noisy); and, for
    a policy given as samples, gains the base policy's own batches of the same shape reach with
    probability alpha or more (``noise_p``: a heavy tail's batch mean is noisier than the bulk's)."""


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
    p_value: float = float("nan")
    excess: float = float("nan")
    tail_share: float = float("nan")
    me_slope: float = float("nan")
    tail_p: float = float("nan")
    null_gain: float = float("nan")
    test: str = ""
    noise_p: float = float("nan")

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
            M.ALARM_P: d["p_value"],
            M.ALARM_EXCESS: d["excess"],
            M.ALARM_TAIL_SHARE: d["tail_share"],
            M.ALARM_ME_SLOPE: d["me_slope"],
            M.ALARM_TAIL_P: d["tail_p"],
            M.ALARM_NULL_GAIN: d["null_gain"],
            M.ALARM_TEST: d["test"],
            M.ALARM_NOISE_P: d["noise_p"],
            M.ALARM_VERSION: float(VERSION),
        }


def _top_contribution(c: np.ndarray, a: np.ndarray, top: float = TOP_MASS) -> float:
    """sum of a c over the top `top` of the mass a, ordered by c (the boundary sample in part).
    Only the largest c are sorted: the k largest (a partition, k grown until they hold the mass);
    the order among ties does not change the sum (tied samples share one c)."""
    k = min(c.size, max(256, int(4 * top * c.size)))
    while True:
        idx = np.argpartition(-c, k - 1)[:k] if k < c.size else np.arange(c.size)
        if k >= c.size or float(np.sum(a[idx])) >= top:
            break
        k = min(c.size, 4 * k)
    order = idx[np.argsort(-c[idx], kind="stable")]
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


def significant(p_value: float, tail_p: float = float("nan"), rule: AlarmRule = AlarmRule()) -> bool:
    """Is the light-tailed null rejected at level alpha? Two tests of the same null: the point's
    gain against the same optimizer on the null replicates (``p_value``; or the null's DV bound)
    and the base pool's mean-excess slope against the null's (``tail_p``: the tail's shape,
    which sees a heavy tail the gain at a knob cannot yet, e.g. a lognormal error small beside
    a Gaussian utility). With both, each at alpha / 2 (Bonferroni: the union is a level-alpha
    test); with the gain test alone (a policy given as samples: no null replicates), p < alpha."""
    ps = [float(v) for v in (p_value, tail_p) if v is not None and np.isfinite(v)]
    if not ps:
        return False
    return min(ps) < rule.alpha / len(ps)


def decide(
    gain: float,
    sigma: float,
    p_value: float,
    tail_share: float,
    rule: AlarmRule = AlarmRule(),
    n_eff: float = math.inf,
    tail_p: float = float("nan"),
    noise_p: float = float("nan"),
) -> tuple[float, str]:
    """(score, level) from the evidence: `alarm` when the light-tailed null is rejected at level
    alpha (``significant``: the gain is more than a light-tailed reward gives, or the base
    pool's tail is heavier than the null's) and tail_share >= share (the gain is carried by
    samples beyond the bulk: material, not only detectable); `watch` when significant only.
    score = tail_share / share when significant, else 0 (>= 1: alarm). Pure: `alarm-eval` and
    the bench re-decide stored evidence with it."""
    if not (np.isfinite(gain) and sigma > 0 and gain > noise_floor(sigma, n_eff, rule)):
        return 0.0, "quiet"
    if np.isfinite(noise_p) and noise_p >= rule.alpha:  # the base policy's own batches gain as much
        return 0.0, "quiet"
    if not significant(p_value, tail_p, rule):
        return 0.0, "quiet"
    t = float(tail_share) if np.isfinite(tail_share) else 0.0
    score = t / rule.share if rule.share > 0 else math.inf
    return score, "alarm" if score >= 1 else "watch"


def baseline_level(dv_ratio: float, gain: float, sigma: float, rule: AlarmRule = AlarmRule(), n_eff: float = math.inf):
    """The old rule's DV-ratio part alone (the bench's baseline): alarm at dv_ratio >= dv_alarm."""
    if not (np.isfinite(gain) and sigma > 0 and gain > noise_floor(sigma, n_eff, rule)):
        return "quiet"
    r = dv_ratio / rule.dv_alarm
    return "alarm" if r >= 1 else "watch" if r >= rule.watch else "quiet"


def alarm(
    samples: np.ndarray,
    kl: float,
    base: BaseStats,
    weights: np.ndarray | None = None,
    rule: AlarmRule = AlarmRule(),
    others: Mapping[str, tuple[np.ndarray, BaseStats]] | None = None,
    null_gains: np.ndarray | None = None,
) -> Alarm:
    """The alarm for one policy.

    samples: (P, M) proxy rewards of the policy's samples, row x for prompt x of `base` (or (B,)
    with a global-mean `base`); weights: same shape, each row summing to 1 (None: uniform), for
    a policy given as weighted base samples (tilt, best-of-n); kl: the policy's mean sequence KL
    to the base in nats; others: more reward models' (samples, base) for the disagreement;
    null_gains: the same optimizer's gains on the null replicates of the pool (tilt_alarm,
    bon_alarm); without them the test is the null's Donsker-Varadhan bound at this KL."""
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
    expected = float(stats.norm.sf(base.max / base.sigma - math.sqrt(2 * kl))) if kl > 0 and base.sigma > 0 else 0.0
    beyond = max(0.0, float(np.sum(a[c > base.max])) - expected)
    dis = float("nan")
    if others:
        z = [gain / base.sigma] + [
            float(np.mean(np.atleast_2d(s) - b.means.mean())) / b.sigma for s, b in others.values() if b.sigma > 0
        ]
        dis = float(np.std(z) / abs(np.mean(z))) if len(z) > 1 and np.mean(z) != 0 else float("nan")
    # The share of the gain carried by samples beyond the bulk's upper quantile (per-prompt
    # medians there, as in the null; the base's own share subtracted).
    tail_share = float("nan")
    if base.null is not None and gain > floor:
        med = base.null.med if base.null.med.size == P else np.full(P, float(np.median(base.null.med)))
        beyond_u = (r - med[:, None]).ravel() > base.null.u
        tail_share = (float(np.sum(a[beyond_u] * c[beyond_u])) - base.tail_base) / gain
    if null_gains is not None:
        test = "same optimizer on the null"
        p = p_value(gain, null_gains)
        ex = excess_lower(gain, null_gains, rule.alpha)
        null_gain = float(np.median(null_gains))
    elif base.null is not None and kl > 0 and np.isfinite(kl):
        test = "null DV bound"
        nb = base.null.dv_bound(kl)
        se = math.sqrt(max(float(np.sum(a**2 * (c - gain) ** 2)), 0.0))
        z = (gain - nb) / se if se > 0 else (math.inf if gain > nb else -math.inf)
        p = float(stats.norm.sf(z))
        ex = (gain - nb - stats.norm.isf(rule.alpha) * se) / gain if gain > 0 else float("nan")
        null_gain = nb
    else:
        test, p, ex, null_gain = "", float("nan"), float("nan"), float("nan")
    me, tp = base.tail if base.tail is not None else (float("nan"), float("nan"))
    # A policy given as samples: is its gain more than the base policy's own batch of that shape
    # gives? (Pool-based policies are exact weights on the pool: no sampling noise to test.)
    noise = base.noise_p(gain, (P, m), rule) if weights is None and gain > floor else float("nan")
    score, level = decide(gain, base.sigma, p, tail_share, rule, n_eff, tp, noise)
    return Alarm(
        gain,
        kl,
        base.sigma,
        bound,
        dv_ratio,
        top,
        beyond,
        dis,
        n_eff,
        score,
        level,
        p,
        ex,
        tail_share,
        me,
        tp,
        null_gain,
        test,
        noise,
    )


# ============================================================================================
# The policies the pipeline measures from the base pool
# ============================================================================================
def _pool_base(b: np.ndarray, rule: AlarmRule) -> BaseStats:
    return BaseStats.for_rule(b, rule)


def tilt_alarm(
    base_proxy: np.ndarray, beta: float, kl: float, rule: AlarmRule = AlarmRule(), base: BaseStats | None = None
) -> Alarm:
    """The tilt pi_beta as softmax(r / beta) weights on the base pool, tested against the tilt at
    the same beta on the null replicates. base: BaseStats of this pool (reuse it along a curve)."""
    from goodhart.eval.tilt import log_weights

    b = np.asarray(base_proxy, dtype=np.float64)
    base = base if base is not None else _pool_base(b, rule)
    ng = base.null.tilt_gains(beta) if base.null is not None and base.null.n_null else None
    return alarm(b, kl, base, np.exp(log_weights(b, beta)), rule, null_gains=ng)


def bon_alarm(
    base_proxy: np.ndarray, n: int, kl: float, rule: AlarmRule = AlarmRule(), base: BaseStats | None = None
) -> Alarm:
    """Best-of-n as the order-statistic weights on the sorted base pool (ties left as sorted),
    tested against best-of-n on the null replicates."""
    from goodhart.eval.bon import order_weights

    b = np.asarray(base_proxy, dtype=np.float64)
    base = base if base is not None else _pool_base(b, rule)
    s = np.sort(b, axis=1)
    w = order_weights(b.shape[1], n)
    ng = base.null.bon_gains(w) if base.null is not None and base.null.n_null else None
    return alarm(s, kl, base, np.broadcast_to(w, s.shape), rule, null_gains=ng)
