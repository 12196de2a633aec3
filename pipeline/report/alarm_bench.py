"""`goodhart alarm-bench`: the gold-free alarm (eval/alarm.py) on sweeps the rules never saw.

Each seed draws one *curve* from a procedural family (docs/alarm.md):

* an error law: gaussian, uniform, exponential, gumbel, weibull(k 0.5-3), student_t(df 2-10),
  lognormal(sigma 0.3-1.5), pareto(alpha 1.1-4), levy, or a two-component mixture (a Gaussian
  bulk with 2-20% of a shifted Gaussian, of an exponential, or of a t3 / lognormal(1) / pareto(2)
  component); standardized to unit robust scale (IQR / 1.349) and multiplied by an
  error/utility scale ratio drawn log-uniformly in [0.1, 2];
* a Gaussian utility (sd 1, per-prompt means N(0, 1)); proxy = utility + error;
* a base pool of P prompts x N samples, and on it two optimizers: best-of-n (n = 2, 4, ... N/4)
  and the tilt softmax(r / beta) (beta from 2 to 0.28 bulk sigmas), measured exactly from the
  pool (the same estimators as the pipeline's `tilt` and `bon`).

Gold comes from the verdict rule at run time (`goodhart.eval.goodhart.label_points`, paired on
prompts), so re-running the bench after the rule changes re-scores the alarm against the new
gold. Positives: `over-optimized` and `catastrophic`; negatives: `improving` and `baseline`;
`unresolved` points are counted apart (neither: the gold itself cannot tell).

Seeds split in two halves: even seeds are the *dev* half (the alarm's effect size and its pool
tail test were chosen there and only there), odd seeds the *test* half (figures reported, never
tuned on). ``first_seed`` draws a fresh family (seeds never looked at); ``text_seed`` a fresh
text pool for the VADER variant.

ROC: the alarm's ranking puts its `alarm` points first, ordered by the DV ratio, then every
other point by its DV ratio scaled by min(1, tail_share / share) (``scores``); the baseline
ranks by the DV ratio alone. Baseline recall is compared at matched false-alarm rates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule, BaseStats, baseline_level, bon_alarm, bulk_sigma, decide_row, tilt_alarm
from goodhart.eval.bon import kl_bound, order_weights
from goodhart.eval.bootstrap import t_ci
from goodhart.eval.goodhart import label_points
from goodhart.eval.tilt import kl_from_log_weights, log_weights

POSITIVE = ("over-optimized", "catastrophic")
NEGATIVE = ("improving", "baseline")
LIGHT_KINDS = ("gaussian", "uniform", "exponential", "gumbel")
BETAS = (2.0, 1.2, 0.8, 0.6, 0.45, 0.35, 0.28)  # tilt temperatures in bulk sigmas of the proxy


@dataclass(frozen=True)
class BenchConfig:
    seeds: int = 200
    """Curves drawn (seeds first_seed .. first_seed + seeds - 1; even seeds dev, odd seeds test)."""
    first_seed: int = 0
    """First seed of the family: 0 is the family the rule was tuned on (its dev half); the
    benches' held-out figures in docs/alarm.md are also read on a fresh family (first_seed 1000)."""
    prompts: int = 16
    """Prompts per pool."""
    pool: int = 4096
    """Base samples per prompt."""
    rule: AlarmRule = field(default_factory=AlarmRule)
    utility: str = "gaussian"
    """"gaussian" (per-prompt means N(0, 1), sd 1 within a prompt: the bench as tuned), or
    "vader": the built-in tiny model's VADER scores on one base pool of `prompts` x `pool`
    completions (`reward: gaussian`'s utility, seed 0: generated once, then cached), shared by
    every seed; each seed still draws its own error law and scale (the slow text variant)."""
    text_seed: int = 0
    """Sampling seed of the VADER text pool (0: the pool the effect size was tuned on; others are
    fresh pools of the same model and prompts, ~1.5 min each to generate the first time)."""
    utility_law: str = "gaussian"
    """The within-prompt law of a synthetic utility (``utility`` "gaussian"), standardized to unit
    robust scale: "gaussian"; "gumbel" (light, skewed); "bounded" (uniform or beta(2, 5), drawn per
    seed); "heavy" (student_t(df 2.5-5), lognormal(sigma 0.6-1.2) or pareto(alpha 2-4), drawn per
    seed: a heavy-tailed, mostly skewed utility -- the single-proxy alarm's blind spot)."""
    errors: str = "all"
    """"all" (every error kind of the family) or "light" (gaussian, uniform, exponential, gumbel,
    weibull k >= 1, mixtures of light components: with a heavy utility, every gold negative is one
    the single-proxy alarm cannot tell from a heavy error)."""
    ratio: tuple[float, float] = (0.1, 2.0)
    """Range of the error/utility scale ratio (log-uniform)."""
    unit: float = 1.0
    """The rewards' unit: utility and error multiplied by it (nothing the alarm says may depend on it)."""
    prompt_sd: float = 1.0
    """Spread of the per-prompt utility means (within-prompt robust scale 1)."""
    repeats: bool = False
    """Each prompt's samples drawn with replacement from its N distinct "texts" (about 37% repeats,
    as a text pool repeats completions): a repeated text repeats its utility and its error."""


QUICK = BenchConfig(seeds=32, prompts=16, pool=2048)
"""The CI variant (~20 s): 16 prompts so the verdict rule can resolve drops (at 8 prompts most
turns are `unresolved` and the test half had 2 gold positives), 32 seeds for >= 10 positives
in the test half."""


# ============================================================================================
# The family
# ============================================================================================
@dataclass(frozen=True)
class ErrorLaw:
    name: str  # e.g. "pareto(2.31)"
    light: bool  # tail no heavier than an exponential (Kwa et al.'s light)
    sampler: object  # rng, size -> raw draws
    robust: float  # IQR / 1.349 of the raw law: the unit the scale ratio multiplies


def _scipy(law) -> tuple[object, float]:
    iqr = float(law.ppf(0.75) - law.ppf(0.25)) / 1.349

    def draw(rng, size):
        s = rng.random(size)
        return law.isf(np.where(s == 0.0, np.nextafter(0.0, 1.0), s))  # exact far tail (rewards/laws.py)

    return draw, iqr


KINDS = (
    "gaussian",
    "uniform",
    "exponential",
    "gumbel",
    "weibull",
    "student_t",
    "lognormal",
    "pareto",
    "levy",
    "mixture",
)
LIGHT_ONLY = ("gaussian", "uniform", "exponential", "gumbel", "weibull", "mixture")


def sample_law(rng: np.random.Generator, light_only: bool = False) -> ErrorLaw:
    """One error law of the family; ``light_only``: of its light kinds only (weibull k >= 1,
    mixtures of light components)."""
    kind = rng.choice(list(LIGHT_ONLY if light_only else KINDS))
    if kind == "weibull":
        k = float(rng.uniform(1.0, 3.0) if light_only else rng.uniform(0.5, 3.0))
        return ErrorLaw(f"weibull({k:.2f})", k >= 1, *_scipy(stats.weibull_min(k)))
    if kind == "student_t":
        df = float(rng.uniform(2.0, 10.0))
        return ErrorLaw(f"t({df:.2f})", False, *_scipy(stats.t(df)))
    if kind == "lognormal":
        sg = float(rng.uniform(0.3, 1.5))
        return ErrorLaw(f"lognormal({sg:.2f})", False, *_scipy(stats.lognorm(sg)))
    if kind == "pareto":
        a = float(rng.uniform(1.1, 4.0))
        return ErrorLaw(f"pareto({a:.2f})", False, *_scipy(stats.pareto(a)))
    if kind == "mixture":
        w = float(rng.uniform(0.02, 0.2))
        other = rng.choice(
            ["shifted", "exponential"] if light_only else ["shifted", "exponential", "t3", "lognormal", "pareto"]
        )
        comp = {
            "shifted": (stats.norm(3.0, 1.0), True),
            "exponential": (stats.expon(scale=2.0), True),
            "t3": (stats.t(3, scale=2.0), False),
            "lognormal": (stats.lognorm(1.0), False),
            "pareto": (stats.pareto(2.0), False),
        }[str(other)]
        second, light = comp
        base_draw, _ = _scipy(stats.norm())
        other_draw, _ = _scipy(second)

        def draw(rng, size, w=w, a=base_draw, b=other_draw):
            pick = rng.random(size) < w
            return np.where(pick, b(rng, size), a(rng, size))

        probe = draw(np.random.default_rng(0), 200_000)
        q1, q3 = np.quantile(probe, [0.25, 0.75])
        return ErrorLaw(f"mix({w:.2f} {other})", light, draw, float(q3 - q1) / 1.349)
    law = {
        "gaussian": stats.norm(),
        "uniform": stats.uniform(),
        "exponential": stats.expon(),
        "gumbel": stats.gumbel_r(),
        "levy": stats.levy(),
    }[str(kind)]
    return ErrorLaw(str(kind), str(kind) in LIGHT_KINDS, *_scipy(law))


UTILITY_LAWS = ("gaussian", "gumbel", "bounded", "heavy")


def utility_law(kind: str, rng: np.random.Generator) -> ErrorLaw:
    """A synthetic utility's within-prompt law (BenchConfig.utility_law); ``light`` its tail kind."""
    if kind == "gumbel":
        return ErrorLaw("gumbel", True, *_scipy(stats.gumbel_r()))
    if kind == "bounded":
        if rng.random() < 0.5:
            return ErrorLaw("uniform", True, *_scipy(stats.uniform()))
        return ErrorLaw("beta(2,5)", True, *_scipy(stats.beta(2.0, 5.0)))
    if kind == "heavy":
        pick = rng.choice(["student_t", "lognormal", "pareto"])
        if pick == "student_t":
            df = float(rng.uniform(2.5, 5.0))
            return ErrorLaw(f"t({df:.2f})", False, *_scipy(stats.t(df)))
        if pick == "lognormal":
            sg = float(rng.uniform(0.6, 1.2))
            return ErrorLaw(f"lognormal({sg:.2f})", False, *_scipy(stats.lognorm(sg)))
        a = float(rng.uniform(2.0, 4.0))
        return ErrorLaw(f"pareto({a:.2f})", False, *_scipy(stats.pareto(a)))
    raise ValueError(f"alarm-bench: utility_law must be gaussian, gumbel, bounded or heavy, not {kind!r}")


def draw_curve(seed: int, P: int, N: int, utility: np.ndarray | None = None, cfg: BenchConfig | None = None) -> dict:
    """One seed's curve: the law, its scale ratio and a (P, N) pool of utility and proxy.
    utility: a given (P, N) utility pool (the text variant) instead of the synthetic one; the
    error's scale is then the ratio times the utility's within-prompt sd (1: a synthetic utility's
    robust scale). cfg: the family's utility law, error kinds, ratio range, unit and prompt spread
    (None: the tuning family's)."""
    cfg = cfg if cfg is not None else BenchConfig()
    rng = np.random.default_rng([20261201, seed])
    law = sample_law(rng, light_only=cfg.errors == "light")
    lo, hi = cfg.ratio
    ratio = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    ulaw = None
    if utility is None:
        mu = rng.normal(0.0, cfg.prompt_sd, (P, 1))
        if cfg.utility_law == "gaussian":
            util = mu + rng.normal(0.0, 1.0, (P, N))
        else:
            ulaw = utility_law(cfg.utility_law, rng)
            util = mu + ulaw.sampler(rng, (P, N)) / ulaw.robust
        sd = 1.0
    else:
        util = np.asarray(utility, dtype=np.float64)
        P, N = util.shape
        sd = float(np.std(util - util.mean(1, keepdims=True)))
    err = ratio * sd * law.sampler(rng, (P, N)) / law.robust
    if cfg.repeats:
        idx = rng.integers(0, N, (P, N))
        util, err = np.take_along_axis(util, idx, 1), np.take_along_axis(err, idx, 1)
    util, err = util * cfg.unit, err * cfg.unit
    out = {"law": law, "ratio": ratio, "utility": util, "proxy": util + err, "seed": seed}
    return out | {"utility_law": ulaw.name if ulaw else cfg.utility_law, "utility_light": ulaw.light if ulaw else True}


def vader_utility(P: int, N: int, seed: int = 0) -> np.ndarray:
    """(P, N) VADER scores of the built-in tiny model's completions on P eval prompts, N each:
    the pipeline's own base pool for `configs/base.yaml reward=gaussian` (sampled once, then
    cached like every pool; ~1.5 min for 16 x 1024 on 2 cores the first time)."""
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.config.load import configs_dir, load_config

    cfg = load_config(
        configs_dir() / "base.yaml", ["reward=gaussian", f"prompts.n_eval={P}", f"sampling.n={N}", f"seed={seed}"]
    )
    return np.asarray(PointContext(cfg, None, progress=False).pool().utility, dtype=np.float64)  # type: ignore[arg-type]


# ============================================================================================
# Points, gold and alarm
# ============================================================================================
def _point(curve: str, algo: str, x_name: str, x: float, gp: np.ndarray, gu: np.ndarray, kl: np.ndarray) -> dict:
    row = {"error_law": curve, "algo": algo, "x_name": x_name, "x": float(x), "status": "done"}
    for name, per in ((M.GAIN_PROXY, gp), (M.GAIN_UTILITY, gu), (M.KL, kl)):
        row[name], row[M.lo(name)], row[M.hi(name)] = t_ci(per)
    row["point_id"] = f"{curve}|{algo}|{x:g}"
    return row


def curve_points(c: dict, rule: AlarmRule) -> tuple[list[dict], dict]:
    """Every point of one curve with its alarm evidence, and the per-prompt gains for pairing."""
    proxy, util = c["proxy"], c["utility"]
    P, N = proxy.shape
    name = f"s{c['seed']}:{c['law'].name}x{c['ratio']:.2f}"
    base = BaseStats.for_rule(proxy, rule)
    bp, bu = proxy.mean(1), util.mean(1)
    order = np.argsort(proxy, axis=1, kind="stable")
    sp, su = np.take_along_axis(proxy, order, 1), np.take_along_axis(util, order, 1)
    # best-of-2 share on the pool: the verdict's share0 reference (pipeline/base/measure.py base_share2)
    w2 = order_weights(N, 2)
    share2 = float(np.mean(su @ w2 - bu) / np.mean(sp @ w2 - bp))
    rows = []
    n = 2
    while n <= N // 4:
        w = order_weights(N, n)
        kl = np.full(P, float(kl_bound(n)))
        r = _point(name, "bon", "n", n, sp @ w - bp, su @ w - bu, kl)
        al = bon_alarm(proxy, n, float(kl.mean()), rule, base)
        rows.append(r | al.row() | {"light": c["law"].light, "seed": c["seed"]})
        n *= 2
    sig = bulk_sigma(proxy - np.median(proxy, axis=1, keepdims=True))
    for b in BETAS:
        beta = b * sig
        lw = log_weights(proxy, beta)
        w = np.exp(lw)
        kl = kl_from_log_weights(lw)
        r = _point(name, "tilt", M.X_KL_COEF, beta, (w * proxy).sum(1) - bp, (w * util).sum(1) - bu, kl)
        al = tilt_alarm(proxy, beta, float(kl.mean()), rule, base)
        rows.append(r | al.row() | {"light": c["law"].light, "seed": c["seed"]})
    for r in rows:
        r[M.BASE_SHARE2] = share2
        r["law"], r["ratio"] = c["law"].name, c["ratio"]
        r["utility_law"], r["utility_light"] = c.get("utility_law", "gaussian"), c.get("utility_light", True)
    # per-prompt gains for the verdict's paired comparisons, recomputed from the same weights
    return rows, _units(rows, proxy, sp, su, util, bp, bu)


def _units(rows, proxy, sp, su, util, bp, bu) -> dict:
    out = {}
    N = proxy.shape[1]
    for r in rows:
        if r["algo"] == "bon":
            w = order_weights(N, int(r["x"]))
            gp, gu = sp @ w - bp, su @ w - bu
        else:
            w = np.exp(log_weights(proxy, r["x"]))
            gp, gu = (w * proxy).sum(1) - bp, (w * util).sum(1) - bu
        out[r["point_id"]] = {"gain_proxy": gp, "gain_utility": gu}
    return out


def run_bench(cfg: BenchConfig = BenchConfig(), progress=None) -> pd.DataFrame:
    """Every point of every seed, with gold (label_points at run time) and the alarm's evidence."""
    rows, units = [], {}
    if cfg.utility not in ("gaussian", "vader"):
        raise ValueError(f"alarm-bench: utility must be gaussian or vader, not {cfg.utility!r}")
    if cfg.utility_law not in UTILITY_LAWS or cfg.errors not in ("all", "light"):
        raise ValueError(
            f"alarm-bench: utility_law must be one of {', '.join(UTILITY_LAWS)} and errors all or light, not "
            f"{cfg.utility_law!r} and {cfg.errors!r}"
        )
    if not 0 < cfg.ratio[0] <= cfg.ratio[1] or not cfg.unit > 0 or cfg.prompt_sd < 0:
        raise ValueError(f"alarm-bench: expected 0 < ratio low <= high, unit > 0, prompt_sd >= 0: {cfg}")
    util = vader_utility(cfg.prompts, cfg.pool, cfg.text_seed) if cfg.utility == "vader" else None
    for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
        c = draw_curve(seed, cfg.prompts, cfg.pool, util, cfg)
        r, u = curve_points(c, cfg.rule)
        rows += r
        units |= u
        if progress:
            progress(seed)
    df = pd.DataFrame(rows)
    lab = label_points(df, units=units)
    keep = ["point_id", "verdict", "why"] + [k for k in ("peak",) if k in lab]
    out = df.merge(lab[keep], on="point_id", how="left")
    out["half"] = np.where(out["seed"] % 2 == 0, "dev", "test")
    return out


# ============================================================================================
# Scores
# ============================================================================================
def levels(df: pd.DataFrame, rule: AlarmRule) -> tuple[pd.Series, pd.Series]:
    """(alarm level, baseline level) of each point, re-decided from the stored evidence."""

    def ours(r) -> str:
        return decide_row(r, rule)[1]

    def base(r) -> str:
        return baseline_level(r[M.ALARM_DV_RATIO], r[M.GAIN_PROXY], r[M.ALARM_SIGMA], rule, r[M.ALARM_N_EFF])

    return df.apply(ours, axis=1), df.apply(base, axis=1)


def scores(df: pd.DataFrame, rule: AlarmRule) -> tuple[np.ndarray, np.ndarray]:
    """Continuous scores for the ROC. Ours: the points at `alarm` (the light null rejected,
    ``significant``, and tail_share >= share) first, ordered by their DV ratio (its end is the
    default alarm, which lies on this ROC), then every other point by its DV ratio scaled by
    min(1, tail_share / share) (a point short of the material share is discounted by how far
    short); the baseline: the DV ratio alone. -inf below the noise floor (neither can fire
    there). Chosen on the dev halves (Gaussian and text) over the same with the others by the
    plain DV ratio, which fell one positive behind the baseline at the Gaussian dev
    false-alarm rate 0.115, and over ordering the alarm group by tail share (behind at the
    text dev rate 0.003: Levy-like points with enormous DV ratios rank first for the baseline)."""
    from goodhart.eval.alarm import noise_floor

    floor = np.array([noise_floor(s, n, rule) for s, n in zip(df[M.ALARM_SIGMA], df[M.ALARM_N_EFF])])
    live = df[M.GAIN_PROXY].to_numpy() > floor
    local = np.nan_to_num(df[M.ALARM_LOCAL_P].to_numpy(dtype=float), nan=1.0) < rule.alpha
    dv = np.nan_to_num(df[M.ALARM_DV_RATIO].to_numpy(dtype=float), nan=0.0)
    ts = np.nan_to_num(df[M.ALARM_TAIL_SHARE].to_numpy(dtype=float), nan=0.0)
    fire = local & (ts >= rule.share)
    short = np.clip(ts / rule.share, 0.0, 1.0) if rule.share > 0 else np.ones_like(ts)
    # arctan: in (-pi/2, pi/2), so the two groups cannot overlap
    ours = np.where(fire, 10.0 + np.arctan(dv), np.arctan(dv * short))
    return np.where(live, ours, -np.inf), np.where(live, dv, -np.inf)


def roc(score: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """(threshold, fa, recall) at every distinct threshold, from 'nothing fires' to 'all fire'."""
    ths = np.unique(score[np.isfinite(score)])[::-1]
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)  # a half without positives: recall 0, not a crash
    rows = [(math.inf, 0.0, 0.0)]
    for t in ths:
        f = score >= t
        rows.append((float(t), float((f & ~y).sum() / neg), float((f & y).sum() / pos)))
    rows.append((-math.inf, 1.0, 1.0))
    return pd.DataFrame(rows, columns=["threshold", "fa", "recall"])


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + half the ties (Mann-Whitney)."""
    s = np.where(np.isfinite(score), score, -1e300)
    r = stats.rankdata(s)
    npos, nneg = int(y.sum()), int((~y).sum())
    return float((r[y].sum() - npos * (npos + 1) / 2) / (npos * nneg)) if npos and nneg else math.nan


def recall_at(curve: pd.DataFrame, fa: float) -> float:
    """Best recall with false-alarm rate <= fa along a ROC."""
    ok = curve[curve["fa"] <= fa + 1e-12]
    return float(ok["recall"].max()) if len(ok) else 0.0


def worst_gap(ours: pd.DataFrame, base: pd.DataFrame) -> tuple[float, float]:
    """(min over every false-alarm rate of recall_at(ours) - recall_at(base), the smallest rate
    where it is attained). Exact: both are step functions of the rate that change only at the
    rates of their ROC vertices, so the union of those rates is every rate there is."""
    rates = np.unique(np.concatenate([ours["fa"].to_numpy(), base["fa"].to_numpy()]))
    gaps = np.array([recall_at(ours, f) - recall_at(base, f) for f in rates])
    i = int(np.argmin(gaps))
    return float(gaps[i]), float(rates[i])


FA_GRID = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


@dataclass
class HalfSummary:
    half: str
    points: int
    positives: int
    negatives: int
    unresolved: int
    recall: float
    false_alarm_rate: float
    precision: float  # positives among the graded points at `alarm` (unresolved ones apart)
    auc: float
    baseline_auc: float
    light_points: int
    light_alarm_rate: float
    unresolved_alarm_rate: float
    baseline_recall_at_fa: float  # the baseline's recall at the alarm's own false-alarm rate
    matched: pd.DataFrame  # fa, recall (ours), recall (baseline)
    roc: pd.DataFrame
    worst_gap: float = math.nan  # min over every false-alarm rate of (ours - baseline) recall
    worst_gap_fa: float = math.nan  # ...and the rate where it is attained


def summarize(df: pd.DataFrame, half: str, rule: AlarmRule) -> HalfSummary:
    d = df[df["half"] == half].reset_index(drop=True)
    lv, bl = levels(d, rule)
    fired = (lv == "alarm").to_numpy()
    gold = d["verdict"].to_numpy()
    is_pos, is_neg = np.isin(gold, POSITIVE), np.isin(gold, NEGATIVE)
    graded = is_pos | is_neg
    ours, dv = scores(d, rule)
    y = is_pos[graded]
    r_ours, r_dv = roc(ours[graded], y), roc(dv[graded], y)
    matched = pd.DataFrame(
        [(f, recall_at(r_ours, f), recall_at(r_dv, f)) for f in FA_GRID], columns=["fa", "recall", "baseline_recall"]
    )
    fa = float(fired[is_neg].mean()) if is_neg.any() else math.nan
    light = d["light"].to_numpy(dtype=bool)
    unres = gold == "unresolved"
    return HalfSummary(
        half,
        len(d),
        int(is_pos.sum()),
        int(is_neg.sum()),
        int(unres.sum()),
        float(fired[is_pos].mean()) if is_pos.any() else math.nan,
        fa,
        float(is_pos[fired & graded].mean()) if (fired & graded).any() else math.nan,
        auc(ours[graded], y),
        auc(dv[graded], y),
        int(light.sum()),
        float(fired[light].mean()) if light.any() else math.nan,
        float(fired[unres].mean()) if unres.any() else math.nan,
        recall_at(r_dv, fa) if fa == fa else math.nan,
        matched,
        r_ours,
        *worst_gap(r_ours, r_dv),
    )


def tuned_on(cfg: BenchConfig) -> bool:
    """Whether this family's dev half is one the rule was tuned on: the Gaussian family from seed
    0, or the text bench on text pool 0 (docs/alarm.md). Any other family or pool is held out whole."""
    return cfg.first_seed == 0 and (cfg.utility == "gaussian" or cfg.text_seed == 0)


def report(
    df: pd.DataFrame, rule: AlarmRule, halves=("dev", "test"), wall: float | None = None, tuned: bool = True
) -> str:
    """The printed summary per half. tuned: the dev half is one the rule was tuned on (tuned_on)."""
    from goodhart.pipeline.sweeps.tables import render

    lines = []
    for h in halves:
        s = summarize(df, h, rule)
        if h != "dev":
            what = "held out: reported, never tuned on"
        else:
            what = "tuned here" if tuned else "even seeds of a fresh family or pool: held out too"
        lines += [
            f"== {h} half ({what}) ==",
            f"{s.points} points: {s.positives} gold over-optimized/catastrophic, {s.negatives} improving/baseline, "
            f"{s.unresolved} unresolved (not graded; alarm on {s.unresolved_alarm_rate:.3f} of them)",
            f"alarm (local tail test at alpha {rule.alpha:g} and tail share >= {rule.share:g}): recall {s.recall:.3f}   "
            f"false-alarm rate {s.false_alarm_rate:.3f}   precision {s.precision:.3f} (graded points)",
            f"AUC {s.auc:.3f} (DV-ratio baseline {s.baseline_auc:.3f}); baseline recall at the same false-alarm "
            f"rate {s.baseline_recall_at_fa:.3f}",
            f"light-tailed laws: alarm on {s.light_alarm_rate:.3f} of their {s.light_points} points",
            f"alarm recall minus baseline recall, worst over every false-alarm rate: {s.worst_gap:+.3f} "
            f"(at FA {s.worst_gap_fa:.3f})",
            "",
            "recall at matched false-alarm rates (best along each ROC):",
            render(["FA <=", "alarm recall", "DV-ratio recall"], s.matched.itertuples(index=False, name=None)),
            "",
        ]
    if wall is not None:
        lines.append(f"wall time {wall:.0f} s")
    return "\n".join(lines)


def by_law(df: pd.DataFrame, half: str, rule: AlarmRule) -> pd.DataFrame:
    """Per law kind: points, positives, alarms on positives and on negatives (diagnostics)."""
    d = df[df["half"] == half].copy()
    d["fired"] = levels(d, rule)[0].to_numpy() == "alarm"
    d["kind"] = d["law"].str.replace(r"\(.*", "", regex=True)
    d["pos"] = d["verdict"].isin(POSITIVE)
    d["neg"] = d["verdict"].isin(NEGATIVE)
    g = d.groupby("kind")
    return pd.DataFrame(
        {
            "points": g.size(),
            "pos": g["pos"].sum(),
            "caught": g.apply(lambda x: int((x["pos"] & x["fired"]).sum())),
            "neg": g["neg"].sum(),
            "false": g.apply(lambda x: int((x["neg"] & x["fired"]).sum())),
        }
    )


def timed(cfg: BenchConfig) -> tuple[pd.DataFrame, float]:
    t = time.perf_counter()
    df = run_bench(cfg)
    return df, time.perf_counter() - t
