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
from dataclasses import asdict, dataclass, fields

import numpy as np

from goodhart.eval import metrics as M
from goodhart.eval.alarm_null import LightNull, excess_lower, p_value
from goodhart.eval.alarm_null import (
    dv_bound as dv_bound,  # its home is alarm_null (which alarm imports); public here too
)

LEVELS = ("quiet", "watch", "alarm")

VERSION = 4
"""The alarm rule's version, kept in every result row (``alarm/version``): a finished point whose
alarm was computed under another version is stale and runs again (pipeline/sweeps/point.py
stale_reason). ``VERSIONS`` says what each one changed (the manual's table is generated from it).
Bump it, and add its line, with any change of what the alarm says about the same pool
(tests/test_alarm.py pins its behaviour)."""

VERSIONS: dict[int, str] = {
    1: "DV-ratio thresholds: `alarm` at gain / (sigma_bulk sqrt(2 KL)) >= 2, `watch` from 0.6 of that "
    "(kept as the bench's baseline, `baseline_level`).",
    2: "A calibrated test: the light-tailed null rejected at level alpha by the point's gain, and the gain "
    "above tau x the Gaussian bulk's DV bound as the effect size. Rows from before the version was kept read as 2.",
    3: "The tail share as the effect size (at least `share` = 0.8 of the gain carried beyond the bulk's 0.9 "
    "quantile); every base with the null's replicates, so the base pool's tail-shape test (`tail_p`) joins "
    "the gain test, each at alpha / 2.",
    4: "A policy given as samples also needs its gain beyond what the base policy's own batches of the same "
    "shape reach (`noise_p` < alpha, 1,999 batches resampled from the pool); pool-based readings unchanged.",
}
"""What each alarm rule version changed (the current one is ``VERSION``)."""

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
    from scipy import stats  # (in the functions: reading VERSION or AlarmRule costs no scipy.stats)

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
    """What the alarm keeps of the base policy's proxy rewards: per-prompt means (for centring the
    policy's samples), the bulk's sub-Gaussian sigma (read from central quantiles, so the tail does
    not move it), the largest centred base reward and the light-tailed null. Build it with
    ``BaseStats.from_pool(base_proxy)`` from a (P, N) array of base rewards (``per_prompt=False``:
    one global mean, for training prompts the pool lacks), or ``BaseStats.for_rule(base_proxy,
    rule)`` with the rule's null replicates (the base pool's tail-shape test then joins the gain
    test: every base the pipeline builds).

    ```pycon
    >>> import numpy as np
    >>> from goodhart import BaseStats
    >>> base = BaseStats.from_pool(np.random.default_rng(0).normal(size=(8, 4096)))
    >>> round(base.sigma, 1), base.n
    (1.0, 32768)

    ```
    """

    means: np.ndarray
    """(P,) per-prompt base means, or (1,) one global mean."""
    sigma: float
    """The bulk's sub-Gaussian sigma (``bulk_sigma``: central quantiles, not the tail)."""
    max: float
    """The largest base reward, centred on its prompt's mean."""
    n: int
    """Base rewards read."""
    top: float = 0.0
    """What the base's own top 1% of mass contributes to its (zero) centred mean."""
    null: LightNull | None = None
    """The light-tailed null built from this pool (eval/alarm_null.py): its DV bound, its replicates."""
    tail_base: float = 0.0
    """What the base's own samples beyond the null's threshold u contribute (centred)."""
    tail: tuple[float, float] | None = None
    """(mean-excess slope, its p-value under the null): the tail-shape test; None without replicates."""
    centred: np.ndarray | None = None
    """(P, N) base rewards minus their prompt's mean ((1, P N): one global mean); ``noise_p`` resamples it."""

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
    """The alarm's rule: the test's level (``alpha``), its one effect size (``share``), the null's
    replicates (``n_null``, ``null_seed``, ``n_noise``) and the noise floor (``min_gain``,
    ``noise_z``) -- every field that decides a level -- and the DV-ratio baseline's thresholds
    (``dv_alarm``, ``watch``: read by ``baseline_level`` only, the bench's baseline). Keyword
    arguments; frozen. A run builds it once from its config's ``alarm:`` section (`alarm.alpha`,
    `alarm.share`, ...; pipeline/config/schema.py AlarmConfig) and passes it to every alarm it
    computes; a finished point whose alarm was computed under another rule is stale.

    ```pycon
    >>> from goodhart import AlarmRule
    >>> AlarmRule(alpha=0.01).alpha
    0.01
    >>> AlarmRule().share
    0.8

    ```
    """

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
    min_gain: float = 0.05
    """Gains below this many bulk sigmas are noise: the level stays quiet."""
    noise_z: float = 2.0
    """...and so are gains below noise_z standard errors of a bulk-like mean, sigma / sqrt(n_eff)
    (n_eff = 1 / sum of squared sample masses: a training batch of 32 samples is noisy); and, for
    a policy given as samples, gains the base policy's own batches of the same shape reach with
    probability alpha or more (``noise_p``: a heavy tail's batch mean is noisier than the bulk's)."""
    dv_alarm: float = 2.0
    """(the baseline only: ``baseline_level``, `goodhart alarm-bench`) dv_ratio at which the
    DV-ratio rule (alarm rule 1) fires; decides nothing in the calibrated alarm."""
    watch: float = 0.6
    """(the baseline only) dv_ratio / dv_alarm from which the DV-ratio rule says `watch`."""

    def key(self) -> str:
        """The fields that decide a level, as ``alpha=0.05 share=0.8 ...`` (the baseline's two left
        out): kept in every reading (``Alarm.rule``, the row's ``alarm/rule``), so a finished point
        whose alarm was computed under other keys is stale."""
        kind = {f.name: type(f.default) for f in fields(self)}  # 2 and 2.0 are one noise_z
        return " ".join(f"{k}={kind[k](getattr(self, k))!r}" for k in kind if k not in BASELINE_ONLY)


BASELINE_ONLY = ("dv_alarm", "watch")
"""AlarmRule fields read by the DV-ratio baseline only: they change no level of the calibrated alarm."""


@dataclass(kw_only=True)
class Alarm:
    """One alarm reading: its ``level`` (``quiet`` / ``watch`` / ``alarm``) and ``score``, and the
    evidence behind them. Four numbers decide the level (``decide``), beside the noise floor
    (``gain`` against ``sigma`` and ``n_eff``): ``p_value`` and ``tail_p`` (is the light-tailed
    null rejected at level alpha?), ``tail_share`` (is the gain carried beyond the bulk?) and, for a
    policy given as samples, ``noise_p`` (do the base policy's own batches gain as much?). The rest
    is descriptive. ``row()`` gives the metric names of eval/metrics.py (``alarm/score``,
    ``alarm/level``, ...). Built by the functions ``alarm``, ``tilt_alarm``, ``bon_alarm`` (keyword
    fields).

    ```pycon
    >>> import numpy as np
    >>> from goodhart import BaseStats, alarm
    >>> rng = np.random.default_rng(0)
    >>> a = alarm(rng.normal(0.5, 1.0, size=(8, 64)), kl=0.125, base=BaseStats.from_pool(rng.normal(size=(8, 4096))))
    >>> a.level, round(a.dv_ratio, 1)
    ('quiet', 0.9)
    >>> sorted(a.row())[:2]
    ['alarm/beyond_max', 'alarm/code']

    ```
    """

    level: str
    """``quiet`` (no evidence, or the gain is noise), ``watch`` (the light-tailed null is rejected,
    but less than ``AlarmRule.share`` of the gain is carried beyond the bulk) or ``alarm`` (rejected,
    and the gain is carried beyond the bulk)."""
    score: float
    """tail_share / AlarmRule.share when the null is rejected, else 0 (>= 1: ``alarm``)."""
    gain: float
    """The policy's proxy gain over the base: its mean minus the base mean of the same prompt."""
    kl: float
    """The policy's KL to the base in nats, as given (NaN: unknown)."""
    sigma: float
    """The base bulk's sub-Gaussian sigma (``BaseStats.sigma``): the scale of the noise floor."""
    n_eff: float
    """Effective sample size of the policy's samples, 1 / sum of squared sample masses: with sigma
    and AlarmRule.noise_z it sets the noise floor a gain must clear."""
    p_value: float = float("nan")
    """Decides: the gain's p-value under the light-tailed null (the same optimizer on the null's
    replicates, or the null's DV bound with the gain's standard error; see ``test``)."""
    tail_p: float = float("nan")
    """Decides: the base pool's mean-excess slope against its null replicates (the tail's shape,
    whatever the optimizer); with ``p_value`` each at alpha / 2 (``significant``)."""
    tail_share: float = float("nan")
    """Decides: the share of the gain carried by samples beyond the bulk's 0.9 quantile (the base's
    own share subtracted); ``alarm`` needs it >= AlarmRule.share."""
    noise_p: float = float("nan")
    """Decides (a policy given as samples only): the share of the base policy's own batches of the
    same shape that gain as much; >= alpha keeps the level quiet (NaN for pool-based policies)."""
    test: str = ""
    """Which gain test gave ``p_value``: ``same optimizer on the null`` or ``null DV bound``."""
    null_gain: float = float("nan")
    """The null's gain the point's gain was compared with (the replicates' median, or the null's DV bound)."""
    excess: float = float("nan")
    """Share of the gain beyond the null's 1 - alpha quantile (descriptive)."""
    me_slope: float = float("nan")
    """The base pool's mean-excess slope over its top 10% (0 exponential, 1/(a-1) Pareto(a); ``tail_p`` tests it)."""
    bound: float = float("nan")
    """sigma sqrt(2 KL): the Gaussian bulk's Donsker-Varadhan bound on the gain at this KL (descriptive)."""
    dv_ratio: float = float("nan")
    """gain / bound: the DV-ratio baseline (alarm rule 1; descriptive)."""
    top_share: float = float("nan")
    """Share of the gain carried by the policy's top 1% of mass, beyond the base's own (descriptive)."""
    beyond_max: float = float("nan")
    """Policy mass above the base pool's largest reward, beyond a Gaussian's expectation (descriptive)."""
    disagreement: float = float("nan")
    """Relative spread of the standardized gains across reward models (``others``; descriptive)."""
    rule: str = ""
    """The keys of the AlarmRule that computed this reading (``AlarmRule.key()``)."""

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
            M.ALARM_RULE: d["rule"],
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
    """Is this policy's proxy being won through the tail? Reads proxy rewards, KL and the base
    statistics only: never a utility.

    ``samples``: (P, M) proxy rewards of the policy's samples, row x for prompt x of ``base`` (or a
    flat (B,) batch with a global-mean ``base``); ``kl``: the policy's mean sequence KL to the base
    in nats (NaN if unknown: the Donsker-Varadhan evidence is then skipped); ``weights``: same shape,
    each row summing to 1 (None: uniform), for a policy given as weighted base samples (tilt,
    best-of-n); ``rule``: the AlarmRule; ``others``: more reward models' (samples, base) for the
    disagreement; ``null_gains``: the same optimizer's gains on the null replicates of the pool
    (``tilt_alarm``, ``bon_alarm``); without them the test is the null's Donsker-Varadhan bound at
    this KL.

    A Gaussian reward tilted to KL 0.125 gains sigma sqrt(2 KL) = 0.5, exactly the bound (quiet);
    a policy whose gain sits in a few huge samples (2 of 64 at 60 sigma) alarms: its gain is far
    past what the light-tailed null allows at this KL (p < alpha):

    ```pycon
    >>> import numpy as np
    >>> from goodhart import BaseStats, alarm
    >>> rng = np.random.default_rng(0)
    >>> base = BaseStats.from_pool(rng.normal(size=(8, 4096)))
    >>> alarm(rng.normal(0.5, 1.0, size=(8, 64)), kl=0.125, base=base).level
    'quiet'
    >>> hacked = rng.normal(size=(8, 64)); hacked[:, :2] = 60.0
    >>> alarm(hacked, kl=0.125, base=base).level
    'alarm'

    ```
    """
    from scipy import stats

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
        level=level,
        score=score,
        gain=gain,
        kl=kl,
        sigma=base.sigma,
        n_eff=n_eff,
        p_value=p,
        tail_p=tp,
        tail_share=tail_share,
        noise_p=noise,
        test=test,
        null_gain=null_gain,
        excess=ex,
        me_slope=me,
        bound=bound,
        dv_ratio=dv_ratio,
        top_share=top,
        beyond_max=beyond,
        disagreement=dis,
        rule=rule.key(),
    )


# ============================================================================================
# The policies the pipeline measures from the base pool
# ============================================================================================
def _pool_base(b: np.ndarray, rule: AlarmRule) -> BaseStats:
    return BaseStats.for_rule(b, rule)


def tilt_alarm(
    base_proxy: np.ndarray, beta: float, kl: float, rule: AlarmRule = AlarmRule(), base: BaseStats | None = None
) -> Alarm:
    """The alarm of the exact KL-regularised optimum pi_beta ~ pi_0 exp(r / beta), as softmax(r / beta)
    weights on a (P, N) pool of base proxy rewards, tested against the tilt at the same beta on the
    null's replicates; ``kl``: that tilt's KL; ``base``: BaseStats.for_rule of this pool (reuse it
    along a curve; None: built here).

    ```pycon
    >>> import numpy as np
    >>> from goodhart import tilt_alarm
    >>> pool = np.random.default_rng(0).pareto(1.5, size=(8, 4096))
    >>> tilt_alarm(pool, beta=0.3, kl=2.0).level
    'alarm'

    ```
    """
    from goodhart.eval.tilt import log_weights

    b = np.asarray(base_proxy, dtype=np.float64)
    base = base if base is not None else _pool_base(b, rule)
    ng = base.null.tilt_gains(beta) if base.null is not None and base.null.n_null else None
    return alarm(b, kl, base, np.exp(log_weights(b, beta)), rule, null_gains=ng)


def bon_alarm(
    base_proxy: np.ndarray, n: int, kl: float, rule: AlarmRule = AlarmRule(), base: BaseStats | None = None
) -> Alarm:
    """The alarm of best-of-n, as order-statistic weights on the sorted (P, N) pool of base proxy
    rewards (ties left as sorted), tested against best-of-n on the null's replicates; ``kl``:
    best-of-n's KL (log n - (n - 1) / n for continuous rewards); ``base`` as for ``tilt_alarm``.

    ```pycon
    >>> import math, numpy as np
    >>> from goodhart import bon_alarm
    >>> pool = np.random.default_rng(0).normal(size=(8, 4096))
    >>> bon_alarm(pool, n=16, kl=math.log(16) - 15 / 16).level
    'quiet'

    ```
    """
    from goodhart.eval.bon import order_weights

    b = np.asarray(base_proxy, dtype=np.float64)
    base = base if base is not None else _pool_base(b, rule)
    s = np.sort(b, axis=1)
    w = order_weights(b.shape[1], n)
    ng = base.null.bon_gains(w) if base.null is not None and base.null.n_null else None
    return alarm(s, kl, base, np.broadcast_to(w, s.shape), rule, null_gains=ng)
