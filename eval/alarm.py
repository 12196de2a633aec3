"""A Goodhart alarm without gold: is this gain being bought in a proxy tail heavier than exponential?

Everything here reads proxy rewards, the KL to the base policy and the base policy's proxy
rewards only. Never the utility: a practitioner has no gold, and neither does this alarm.

What it says, and what it assumes (docs/alarm.md). ``alarm`` means: *this point's proxy gain is
being bought in a proxy tail heavier than exponential* -- a risk flag. Read as "the utility is
turning" it assumes a light-tailed or bounded utility: a heavy-tailed *utility* beside a light
error gives the same proxy law as a light utility beside a heavy error, and no statistic of one
proxy tells them apart (the first is optimization doing real good). With a held-out proxy (a
second proxy with an independent error: ``eval.holdout``, docs/holdout.md) the utility curve
itself is estimated; this alarm is then its companion.

The decision rests on evidence that moves with the point (rule 5):

* ``local_p`` (decides ``alarm``): the **local tail test**. Where the point buys its gain -- the
  base pool's upper ranks from the top down to the policy's 0.99 mass quantile, split at its
  median mass -- is the base proxy's tail heavier than exponential? By Renyi's representation
  the normalized spacings i (X_(i) - X_(i+1)) of an exponential tail's top order statistics are
  i.i.d. exponential whatever the scale, so the ratio of their means, deeper half over shallower
  half (``local_ratio``; about 1 for an exponential tail, below it for a Gaussian or bounded
  one, above it for a tail whose hazard falls) is F(2 n_up, 2 n_low) under the null: an exact,
  scale-free, level-alpha test of "the hazard does not fall here". It reads the pool at the
  depth of *this* point (``depth``), so one knob's reading is not another's, and one chance
  rejection reaches only the points that buy their gain at that depth.
* ``tail_share`` (decides ``alarm``, the effect size): at least ``AlarmRule.share`` (0.8) of the
  gain carried by samples beyond the bulk's 0.9 quantile (the base's own share subtracted): the
  gain is made in the tail, not by moving the bulk.

``watch`` says that the light-tailed null is rejected but the point's own evidence does not (yet)
say its gain is bought there: the local test rejects with less than ``share`` of the gain in the
tail, or only the curve-level tests reject (``significant``): the base pool's tail beyond its
0.9 quantile against an exponential fitted to its bulk (eval/alarm_null.py) -- its mean-excess
slope (``tail_p``, one number per pool) and the point's gain against the same optimizer on the
null's replicates (``p_value``; for a policy given as samples, the null's Donsker-Varadhan bound
at its KL), each at alpha / 2. Neither of these can put a point at ``alarm``: the pool test is the
same at every knob, and the gain test compares the tail with an exponential of the *bulk's*
scale (a small heavy error beside a Gaussian utility stays below it long past the turn).

Evidence in each row (each a number named in eval.metrics; ``local_p``, ``tail_share``,
``p_value``, ``tail_p`` and, for samples, ``noise_p`` decide):

1. ``dv_ratio``: gain / (sigma_bulk sqrt(2 KL)), the Gaussian-bulk Donsker-Varadhan ratio (rule
   1, and the bench's baseline). For any policy pi and lambda > 0,
   E_pi[r] - E_pi0[r] <= (KL(pi || pi0) + log E_pi0 exp(lambda (r - E_pi0 r))) / lambda; with the
   bulk's Gaussian CGF the bound is sigma sqrt(2k).
2. ``p_value`` and ``excess`` (the share of the gain beyond the null's 1 - alpha quantile).
3. ``tail_share`` (above).
4. ``me_slope`` / ``tail_p``: the base pool's mean-excess slope over its top 10% and its p-value
   under the null (0 for an exponential tail, 1/(alpha-1) for Pareto(alpha)).
5. ``local_p``, ``local_ratio``, ``depth`` (above).
6. ``top_share``, ``beyond_max``, ``disagreement`` (descriptive).

Nothing fires before the gain is clearly above the noise of the base bulk (``min_gain`` x sigma,
``noise_z`` standard errors), nor, for a policy given as samples, before it is above what the
base policy's own batches of the same shape reach (``noise_p`` < alpha: resampled from the pool;
on a proxy of infinite variance the bulk-based floor alone let the base itself read ``alarm`` at
8-17% of checks, docs/results.md).
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

MEANING = (
    "alarm (no gold): `alarm` = this gain is being bought in a proxy tail heavier than exponential, a risk "
    "flag; as a sign that the utility turns it assumes a light-tailed or bounded utility (a heavy-tailed "
    "utility beside a light error reads the same: a held-out proxy, eval.holdout, tells them apart)"
)
"""What a level means and what it assumes, printed wherever the alarm is (tables, reports)."""

VERSION = 5
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
    5: "`alarm` rests on the point's own evidence: the local tail test (`local_p` < alpha: the base pool's "
    "tail (its distinct rewards) is heavier than exponential where this point buys its gain, from the top down to its 0.99 mass "
    "quantile) with the tail share; the pool's tail-shape test and the gain against the bulk's exponential "
    "null (`tail_p`, `p_value`) say `watch` at most.",
}
"""What each alarm rule version changed (the current one is ``VERSION``)."""

# Central quantile levels the bulk sigma is read from: sigma = (Q(q) - Q(1-q)) / (2 z_q), the
# largest over these levels (conservative for a bulk a little wider than Gaussian).
BULK_LEVELS = (0.75, 0.9)
TOP_MASS = 0.01  # "the top 1% of samples"
# The local tail test's window: the base pool's ranks from the top down to the 0.99 quantile of where
# the policy buys its gain (its samples weighted by mass x reward above the base median), split at that
# weight's median; the deeper half at least LOCAL_MIN spacings and the shallower at least LOCAL_LOW
# times as many (a policy beyond the base's largest reward reads the base's top (1 + LOCAL_LOW)
# LOCAL_MIN: 16 against 16 had too little power at the top of a lognormal(1.5) pool). Best-of-n on an exponential tail: depths 0 to ~5 / n, split near
# 1 / n, so the lower half reaches where best-of-n/2 buys its gain. Weighting by reward, not mass
# alone, puts a policy whose gain sits in a few far samples (a spike) where those samples are, not
# in the bulk its other samples share with the base. Chosen on dev families only (docs/alarm.md).
LOCAL_MASS = (0.5, 0.99)
LOCAL_MIN = 32
LOCAL_LOW = 4


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
    from scipy import special  # ndtri is norm.ppf (a sweep worker never imports scipy.stats)

    x = np.asarray(centred, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    out = 0.0
    for q in levels:
        lo, hi = np.quantile(x, [1 - q, q])
        out = max(out, (hi - lo) / (2 * special.ndtri(q)))
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
    desc: np.ndarray | None = None
    """The distinct values of the base rewards minus their prompt's median (one global median with
    per_prompt=False), pooled, in descending order: the local tail test reads their spacings. Distinct:
    a text pool repeats completions (the same text, the same reward), and the law of its distinct
    texts' rewards is the continuous one a synthetic error is drawn from."""

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
        desc = np.unique((b - med).ravel())[::-1].copy()  # distinct values, largest first
        return cls(
            means,
            bulk_sigma(b - med),
            float(np.max(centred_mean)),
            int(b.size),
            top,
            null,
            tail_base,
            tail,
            centred,
            desc,
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
    evidence behind them. ``alarm``: this gain is being bought in a proxy tail heavier than
    exponential (a risk flag; as a sign that the utility turns it assumes a light or bounded
    utility). Five numbers decide the level (``decide``), beside the noise floor (``gain`` against
    ``sigma`` and ``n_eff``): ``local_p`` (is the base tail heavier than exponential where this
    point buys its gain?) and ``tail_share`` (is the gain carried beyond the bulk?) for ``alarm``;
    ``p_value`` and ``tail_p`` (the curve-level tests of the light-tailed null) for ``watch``; and,
    for a policy given as samples, ``noise_p`` (do the base policy's own batches gain as much?).
    The rest is descriptive. ``row()`` gives the metric names of eval/metrics.py (``alarm/score``,
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
    """``quiet`` (no evidence, or the gain is noise), ``watch`` (the light-tailed null is rejected --
    by the local test with less than ``AlarmRule.share`` of the gain beyond the bulk, or by the
    curve-level tests alone) or ``alarm`` (the local test rejects and the gain is carried beyond
    the bulk: the gain is being bought in a proxy tail heavier than exponential)."""
    score: float
    """tail_share / AlarmRule.share when the local test rejects, else 0 (>= 1: ``alarm``)."""
    gain: float
    """The policy's proxy gain over the base: its mean minus the base mean of the same prompt."""
    kl: float
    """The policy's KL to the base in nats, as given (NaN: unknown)."""
    sigma: float
    """The base bulk's sub-Gaussian sigma (``BaseStats.sigma``): the scale of the noise floor."""
    n_eff: float
    """Effective sample size of the policy's samples, 1 / sum of squared sample masses: with sigma
    and AlarmRule.noise_z it sets the noise floor a gain must clear."""
    local_p: float = float("nan")
    """Decides ``alarm``: the local tail test's p-value (``local_tail``): is the base pool's tail
    heavier than exponential where this point buys its gain? NaN: too few distinct base rewards
    in the window (a pool too small for the point, or tied rewards)."""
    tail_share: float = float("nan")
    """Decides ``alarm``: the share of the gain carried by samples beyond the bulk's 0.9 quantile
    (the base's own share subtracted); ``alarm`` needs it >= AlarmRule.share."""
    p_value: float = float("nan")
    """Decides ``watch``: the gain's p-value under the bulk's light-tailed null (the same optimizer on
    the null's replicates, or the null's DV bound with the gain's standard error; see ``test``)."""
    tail_p: float = float("nan")
    """Decides ``watch``: the base pool's mean-excess slope against its null replicates (the tail's
    shape over its top 10%, one number per pool); with ``p_value`` each at alpha / 2 (``significant``)."""
    local_ratio: float = float("nan")
    """The local test's statistic: mean normalized spacing of the window's deeper half over its
    shallower half (1 for an exponential tail, < 1 lighter, > 1 a falling hazard)."""
    depth: float = float("nan")
    """Share of the base pool above the policy's median mass: where the point buys its gain (best-of-n:
    about 0.69 / n)."""
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
            M.ALARM_LOCAL_P: d["local_p"],
            M.ALARM_LOCAL_RATIO: d["local_ratio"],
            M.ALARM_DEPTH: d["depth"],
            M.ALARM_VERSION: float(VERSION),
            M.ALARM_RULE: d["rule"],
        }


def _top_contribution(c: np.ndarray, a: np.ndarray, top: float = TOP_MASS) -> float:
    """sum of a c over the top `top` of the mass a, ordered by c (the boundary sample in part).
    Only the largest c are ordered: the positive ones' order, remembered per pool layout
    (``_descending``: a curve's points reweight one pool), when they hold the mass; else the k
    largest (a partition, k grown until they hold it). The order among ties does not change the
    sum (tied samples share one c)."""
    desc = _descending(c)
    k = min(desc.size, max(256, int(4 * top * c.size)))
    while k < desc.size and float(np.sum(a[desc[:k]])) < top:
        k = min(desc.size, 4 * k)
    if desc.size and float(np.sum(a[desc[:k]])) >= top:
        order = desc[:k]
    else:  # the top mass reaches c <= 0: order the k largest of all
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
    """Is the bulk's light-tailed null rejected at level alpha by the curve-level tests? The point's
    gain against the same optimizer on the null replicates (``p_value``; or the null's DV bound)
    and the base pool's mean-excess slope against the null's (``tail_p``: the tail's shape over its
    top 10%, one number per pool). With both, each at alpha / 2 (Bonferroni: the union is a
    level-alpha test); with the gain test alone (a base without replicates), p < alpha. Enough for
    ``watch``, never for ``alarm`` (``decide``)."""
    ps = [float(v) for v in (p_value, tail_p) if v is not None and np.isfinite(v)]
    if not ps:
        return False
    return min(ps) < rule.alpha / len(ps)


_DESCENDING: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
DESCENDING_ENTRIES = 8
"""(rewards, sample, order) triples local_tail keeps (a curve's points weight one pool; a tilt and a
best-of-n curve see it in two layouts, centred two ways): at most this many, the least recently
used dropped first."""


def _every(c: np.ndarray) -> np.ndarray:
    """~256 evenly spaced entries of flat c: two arrays that differ there are not equal (a cheap
    first comparison before the whole array's)."""
    return c[:: max(1, c.size // 256)]


def _descending(c: np.ndarray) -> np.ndarray:
    """Indices of the finite c > 0, largest first (ties in index order: a stable sort), remembered
    with c itself: a curve's points reweight the same pool, so its order is sorted once (an equal
    array is found by comparison, cheaper than hashing it). Restricted to any subset the order is
    that subset's own stable sort."""
    sample = _every(c)
    for i, (seen, seen_sample, order) in enumerate(_DESCENDING):
        if seen.shape == c.shape and np.array_equal(seen_sample, sample) and np.array_equal(seen, c):
            _DESCENDING.append(_DESCENDING.pop(i))  # most recently used last
            return order
    pos = np.flatnonzero((c > 0) & np.isfinite(c))
    out = pos[np.argsort(-c[pos], kind="stable")]
    out.flags.writeable = False
    _DESCENDING.append((c.copy(), sample.copy(), out))  # copies: the caller may change its array later
    del _DESCENDING[:-DESCENDING_ENTRIES]
    return out


def local_tail(desc: np.ndarray, c: np.ndarray, a: np.ndarray) -> tuple[float, float, float]:
    """(ratio, p, depth): the local tail test of a policy with mass ``a`` on rewards ``c`` (both flat,
    centred on the base median as ``desc`` is) against the distinct base rewards ``desc`` (descending;
    ``BaseStats.desc``).

    Where the policy buys its gain: its samples weighted by a max(c, 0). The window: base ranks
    1 .. i_b, where i_b counts the base rewards at or above that weight's 0.99 quantile, split at i_m
    (its median; ``depth`` = i_m / base size); the deeper half at least LOCAL_MIN spacings, the
    shallower at least LOCAL_LOW times the deeper. The statistic: the normalized spacings S_i = i (X_(i) - X_(i+1)) of the base's
    order statistics (X_(1) the largest), mean over the deeper half (i < i_m) over mean over the
    shallower half. For an exponential tail the S_i are i.i.d. exponential (Renyi), so the ratio is
    F(2 n_up, 2 n_low)-distributed whatever the scale; S_i estimates 1 / hazard at X_(i), so a ratio
    above 1 is a hazard that falls with depth: a tail heavier than exponential there. Repeated base
    rewards (a text pool's repeated completions) count once: ``desc`` holds distinct values; a reward
    on a lattice (a discrete score) has even spacings at its top, a ratio below 1. NaN when the window
    reaches past the distinct rewards.

    ```pycon
    >>> import numpy as np
    >>> from goodhart.eval.alarm import local_tail
    >>> rng = np.random.default_rng(0)
    >>> base, top = np.unique(rng.pareto(1.5, 65536))[::-1], np.full(64, 1.0 / 64)
    >>> ratio, p, depth = local_tail(base, base[:64], top)  # a policy on the base's top 64
    >>> ratio > 1.5, p < 0.01
    (True, True)
    >>> base = np.unique(rng.exponential(size=65536))[::-1]
    >>> 0.5 < local_tail(base, base[:64], top)[0] < 1.5
    True

    ```
    """
    from scipy import special  # fdtrc is stats.f.sf bit for bit, without importing scipy.stats

    desc = np.asarray(desc, dtype=np.float64)
    c, a = np.asarray(c, dtype=np.float64).ravel(), np.asarray(a, dtype=np.float64).ravel()
    if desc.size < 2:
        return float("nan"), float("nan"), float("nan")
    order = _descending(c)  # the positive finite rewards, largest first (a stable sort)
    order = order[a[order] > 0]  # those the policy puts mass on, in the same order
    if not order.size:
        return float("nan"), float("nan"), float("nan")
    cv = c[order]
    cm = np.cumsum(a[order] * cv)
    cm = cm / cm[-1]
    t_mid, t_end = (cv[min(int(np.searchsorted(cm, q)), cv.size - 1)] for q in LOCAL_MASS)
    rank = lambda t: int(np.searchsorted(-desc, -t, side="right"))  # base rewards >= t  # noqa: E731
    i_m = max(rank(t_mid), 1)
    depth = i_m / desc.size
    i_m = max(i_m, LOCAL_MIN + 1)
    i_b = max(rank(t_end), i_m + LOCAL_LOW * (i_m - 1) - 1)
    if i_b > desc.size - 1:
        return float("nan"), float("nan"), depth
    x = desc[: i_b + 1]
    spacing = (x[:-1] - x[1:]) * np.arange(1, i_b + 1)  # S_1 .. S_{i_b}
    up, low = spacing[: i_m - 1], spacing[i_m - 1 :]
    if not (up.mean() > 0 and low.mean() > 0):  # not distinct values: nothing to read
        return float("nan"), float("nan"), depth
    ratio = float(up.mean() / low.mean())
    return ratio, float(special.fdtrc(2 * up.size, 2 * low.size, ratio)), depth


def decide(
    gain: float,
    sigma: float,
    p_value: float,
    tail_share: float,
    rule: AlarmRule = AlarmRule(),
    n_eff: float = math.inf,
    tail_p: float = float("nan"),
    noise_p: float = float("nan"),
    local_p: float = float("nan"),
) -> tuple[float, str]:
    """(score, level) from the evidence: `alarm` when the local tail test rejects at level alpha
    (``local_p``: the base tail is heavier than exponential where this point buys its gain) and
    tail_share >= share (the gain is carried beyond the bulk): this gain is being bought in a proxy
    tail heavier than exponential. `watch` when the light-tailed null is rejected otherwise: by the
    local test with a smaller share, or by the curve-level tests alone (``significant``). Quiet
    within the noise (the floor; for samples, ``noise_p``). score = tail_share / share when the
    local test rejects, else 0 (>= 1: alarm). Pure: `alarm-eval` and the bench re-decide stored
    evidence with it (``decide_row``)."""
    if not (np.isfinite(gain) and sigma > 0 and gain > noise_floor(sigma, n_eff, rule)):
        return 0.0, "quiet"
    if np.isfinite(noise_p) and noise_p >= rule.alpha:  # the base policy's own batches gain as much
        return 0.0, "quiet"
    local = bool(np.isfinite(local_p) and local_p < rule.alpha)
    if not (local or significant(p_value, tail_p, rule)):
        return 0.0, "quiet"
    if not local:
        return 0.0, "watch"
    t = float(tail_share) if np.isfinite(tail_share) else 0.0
    score = t / rule.share if rule.share > 0 else math.inf
    return score, "alarm" if score >= 1 else "watch"


def decide_row(row: Mapping[str, object], rule: AlarmRule = AlarmRule()) -> tuple[float, str]:
    """``decide`` on one result row's (or one logged check's) evidence, by metric name (eval.metrics).
    The gain is the row's ``gain/proxy``, else (a logged check) dv_ratio x dv_bound. Evidence a row
    lacks is NaN: a row computed before rule 5 has no ``alarm/local_p`` and reads `watch` at most."""

    def num(key: str, default: float = float("nan")) -> float:
        try:
            v = float(row.get(key, default))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return default
        return default if math.isnan(v) else v

    gain = num(M.GAIN_PROXY)
    if math.isnan(gain):
        gain = num(M.ALARM_DV_RATIO) * num(M.ALARM_DV_BOUND)
    return decide(
        gain,
        num(M.ALARM_SIGMA),
        num(M.ALARM_P),
        num(M.ALARM_TAIL_SHARE),
        rule,
        num(M.ALARM_N_EFF, math.inf),
        num(M.ALARM_TAIL_P),
        num(M.ALARM_NOISE_P),
        num(M.ALARM_LOCAL_P),
    )


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

    A Gaussian reward tilted to KL 0.125 gains sigma sqrt(2 KL) = 0.5, exactly the bound (quiet).
    A policy whose gain sits in a few huge samples (2 of 64 at 60 sigma) has far more gain than the
    light-tailed null allows at this KL (the gain test rejects: `watch`); whether it is bought in a
    tail heavier than exponential is the base pool's to say where it is bought -- its top: a
    Gaussian base says no, a base with a Pareto error says yes (`alarm`):

    ```pycon
    >>> import numpy as np
    >>> from goodhart import BaseStats, alarm
    >>> rng = np.random.default_rng(0)
    >>> base = BaseStats.from_pool(rng.normal(size=(8, 4096)))
    >>> alarm(rng.normal(0.5, 1.0, size=(8, 64)), kl=0.125, base=base).level
    'quiet'
    >>> hacked = rng.normal(size=(8, 64)); hacked[:, :2] = 60.0
    >>> alarm(hacked, kl=0.125, base=base).level
    'watch'
    >>> heavy = BaseStats.from_pool(rng.normal(size=(8, 4096)) + 0.3 * rng.pareto(1.5, (8, 4096)))
    >>> alarm(hacked, kl=0.125, base=heavy).level
    'alarm'

    ```
    """
    from scipy import special  # ndtr(-z) is stats.norm.sf(z), ndtri stats.norm.ppf, bit for bit

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
    expected = float(special.ndtr(math.sqrt(2 * kl) - base.max / base.sigma)) if kl > 0 and base.sigma > 0 else 0.0
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
        p = float(special.ndtr(-z))
        ex = (gain - nb - -special.ndtri(rule.alpha) * se) / gain if gain > 0 else float("nan")
        null_gain = nb
    else:
        test, p, ex, null_gain = "", float("nan"), float("nan"), float("nan")
    me, tp = base.tail if base.tail is not None else (float("nan"), float("nan"))
    # A policy given as samples: is its gain more than the base policy's own batch of that shape
    # gives? (Pool-based policies are exact weights on the pool: no sampling noise to test.)
    noise = base.noise_p(gain, (P, m), rule) if weights is None and gain > floor else float("nan")
    # Where does this point buy its gain, and is the base tail heavier than exponential there?
    local_ratio = local_p = depth = float("nan")
    if base.desc is not None and base.null is not None and gain > floor:
        med = base.null.med if base.null.med.size == P else np.full(P, float(np.median(base.null.med)))
        local_ratio, local_p, depth = local_tail(base.desc, (r - med[:, None]).ravel(), a)
    score, level = decide(gain, base.sigma, p, tail_share, rule, n_eff, tp, noise, local_p)
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
        local_p=local_p,
        local_ratio=local_ratio,
        depth=depth,
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
    base_proxy: np.ndarray,
    beta: float,
    kl: float,
    rule: AlarmRule = AlarmRule(),
    base: BaseStats | None = None,
    logw: np.ndarray | None = None,
) -> Alarm:
    """The alarm of the exact KL-regularised optimum pi_beta ~ pi_0 exp(r / beta), as softmax(r / beta)
    weights on a (P, N) pool of base proxy rewards, tested against the tilt at the same beta on the
    null's replicates; ``kl``: that tilt's KL; ``base``: BaseStats.for_rule of this pool (reuse it
    along a curve; None: built here); ``logw``: eval.tilt.log_weights(base_proxy, beta) when the
    caller has it.

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
    w = np.exp(log_weights(b, beta) if logw is None else logw)
    return alarm(b, kl, base, w, rule, null_gains=ng)


def bon_alarm(
    base_proxy: np.ndarray,
    n: int,
    kl: float,
    rule: AlarmRule = AlarmRule(),
    base: BaseStats | None = None,
    sorted_proxy: np.ndarray | None = None,
) -> Alarm:
    """The alarm of best-of-n, as order-statistic weights on the sorted (P, N) pool of base proxy
    rewards (ties left as sorted), tested against best-of-n on the null's replicates; ``kl``:
    best-of-n's KL (log n - (n - 1) / n for continuous rewards); ``base`` as for ``tilt_alarm``;
    ``sorted_proxy``: np.sort(base_proxy, axis=1) when the caller has it (a curve's points share it).

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
    s = np.sort(b, axis=1) if sorted_proxy is None else np.asarray(sorted_proxy, dtype=np.float64)
    w = order_weights(b.shape[1], n)
    ng = base.null.bon_gains(w) if base.null is not None and base.null.n_null else None
    return alarm(s, kl, base, np.broadcast_to(w, s.shape), rule, null_gains=ng)
