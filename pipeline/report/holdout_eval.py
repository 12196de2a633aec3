"""`goodhart holdout-eval SWEEP`: the held-out estimate scored against exact truth (docs/holdout.md).

A finished distributional sweep run with `eval.holdout` holds, for every point, the held-out gain
and (from gold's draw) the measured utility gain. Its exact truth is the population curve:

* best-of-n: E[V | best of n by V + X] - E[V] by numerical integration (eval/exact.py bon_gain,
  in quantile form: bounded, discontinuous and heavy-tailed laws alike);
* the KL tilt of Gaussian V and X: Var(V) / beta in closed form (points whose pool estimate is
  flagged low-ESS are the pool's, not the population optimum: left out);
* nothing else (other tilts and divergences, a utility without a finite mean): left out, and said.

The exact curve is labelled by the same rule at face value (intervals of width 0: the label a
referee with the exact curve gives), the estimate's points by gold's rule on the held-out gain
(eval/holdout.py estimated_labels), both on the same scored points. Figures: agreement on points
both resolved, the estimated peak within one knob of the exact peak (per curve and optimizer),
`est:over-optimized` on heavy-utility-beside-light-error curves (must be none), and how often the
held-out interval covers the exact gain (gold's own interval beside it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import VerdictRule, label_points
from goodhart.eval.holdout import Agreement, agreement, estimated_labels, turns

HEAVY = ("student_t", "lognormal", "pareto", "levy")
"""Heavy-tailed laws (Kwa et al.): the rest are light."""


def scipy_law(cfg) -> object:
    """A LawConfig as a frozen scipy law of X = loc + scale * (Z - median(Z) if center)."""
    from goodhart.pipeline.base.scoring import law

    lw = law(cfg)
    std = lw.standard
    shift = float(std.median()) if lw.center else 0.0
    return std.dist(*std.args, loc=lw.loc - lw.scale * shift, scale=lw.scale)


@functools.lru_cache(maxsize=64)
def _bon_exact(utility_json: str, error_json: str, ns: tuple[int, ...]) -> tuple[float, ...]:
    from goodhart.eval.exact import bon_gain
    from goodhart.pipeline.config.schema import LawConfig

    u, e = LawConfig.model_validate_json(utility_json), LawConfig.model_validate_json(error_json)
    vals = bon_gain(scipy_law(u), scipy_law(e), [1, *ns])
    return tuple(float(g) for g in vals[1:] - vals[0])  # minus best-of-1 from the same quadrature (0 up to its error)


def exact_gains(cfgs: list) -> list[float]:
    """The exact utility gain of each point's policy (nan where none is known), computed once per
    (utility, error) pair for all its best-of-n knobs."""
    from goodhart.pipeline.config.schema import BonConfig, DistributionalReward, TiltConfig

    out = [float("nan")] * len(cfgs)
    need: dict[tuple[str, str], set[int]] = {}
    for c in cfgs:
        r = c.reward
        if isinstance(r, DistributionalReward) and isinstance(c.algo, BonConfig) and exact_scorable(r):
            need.setdefault((r.utility.model_dump_json(), r.error.model_dump_json()), set()).update({1, 2, c.algo.n})
    table = {k: dict(zip(sorted(ns), _bon_exact(*k, tuple(sorted(ns))))) for k, ns in need.items()}
    for i, c in enumerate(cfgs):
        r = c.reward
        if not isinstance(r, DistributionalReward) or not exact_scorable(r):
            continue
        if isinstance(c.algo, BonConfig):
            out[i] = table[(r.utility.model_dump_json(), r.error.model_dump_json())][c.algo.n]
        elif (
            isinstance(c.algo, TiltConfig)
            and c.algo.divergence == "kl"
            and r.utility.name == r.error.name == "gaussian"
        ):
            out[i] = r.utility.scale**2 / c.algo.kl.coef  # Var(V) / beta
    return out


def exact_gain2(cfg) -> float:
    """Best-of-2's exact utility gain (the near-base floor of the exact curve)."""
    r = cfg.reward
    if not exact_scorable(r):
        return float("nan")
    return dict(zip((1, 2), _bon_exact(r.utility.model_dump_json(), r.error.model_dump_json(), (1, 2))))[2]


def exact_scorable(r) -> bool:
    """A distributional proxy with a single error and no transform, whose utility has a finite mean
    (not Levy, not pareto(alpha <= 1) or student_t(df <= 1))."""
    from goodhart.pipeline.config.schema import DistributionalReward

    if not isinstance(r, DistributionalReward) or r.ensemble is not None or r.transform is not None:
        return False
    u = r.utility
    return not (u.name == "levy" or (u.name == "pareto" and u.alpha <= 1) or (u.name == "student_t" and u.df <= 1))


def _one_row_per_knob(truth: pd.DataFrame) -> pd.DataFrame:
    """The exact table with its seeds merged beforehand (the proxy gain averaged, the exact gain one
    number), under the pooled point id label_points gives the estimate's rows: label_points would
    otherwise build a t interval over the seeds' proxy gains, and the exact curve has none."""
    from goodhart.eval.goodhart import curve_columns

    keys = [*curve_columns(truth), "algo", "x_name", "x"]
    rows = []
    for _, g in truth.groupby(keys, sort=False, dropna=False):
        r = g.iloc[0].copy()
        r["point_id"] = "+".join(str(p) for p in g["point_id"])
        for c in (M.GAIN_PROXY, M.lo(M.GAIN_PROXY), M.hi(M.GAIN_PROXY)):
            r[c] = float(g[M.GAIN_PROXY].astype(float).mean())
        r["seed"] = 0
        rows.append(r)
    return pd.DataFrame(rows).reset_index(drop=True)


@dataclass
class HoldoutScore:
    points: pd.DataFrame
    """One row per scored point: knob, exact gain, held-out and gold gains with bounds, both labels."""
    agreement: Agreement
    peaks: int
    """Curves (per optimizer) whose estimated peak is within one knob of the exact peak."""
    curves: int
    heavy_utility_over: int
    """Points of heavy-utility-beside-light-error curves estimated over-optimized or catastrophic (0)."""
    heavy_utility_points: int
    coverage: float
    """Fraction of scored points whose held-out interval holds the exact gain."""
    gold_coverage: float
    """The same for gold's own interval (the yardstick: what prompts x pool allow)."""
    left_out: list[str] = field(default_factory=list)
    peak_rows: pd.DataFrame = field(default_factory=pd.DataFrame)


def score(root: Path, rule: VerdictRule = VerdictRule()) -> HoldoutScore:
    """The held-out estimate of a finished sweep against exact truth."""
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.report.verdicts import finished_points

    df, units = finished_points(root)
    if M.GAIN_HOLDOUT not in df:
        raise FileNotFoundError(f"{root}: no held-out gain in its results (run the sweep with eval.holdout set)")
    cfgs = [load_config(root / "points" / str(p) / "config.yaml") for p in df["point_id"]]
    return score_rows(df, cfgs, units, rule)


def score_rows(df: pd.DataFrame, cfgs: list, units: dict | None, rule: VerdictRule = VerdictRule()) -> HoldoutScore:
    """score() on rows (a results table) and their configs."""
    df = df.reset_index(drop=True).copy()
    exact = exact_gains(cfgs)
    df["exact"] = exact
    flagged = df.get(M.TILT_ESS_OK, pd.Series(True, index=df.index)).isin([False, "False", 0])
    keep = df["exact"].notna() & ~flagged & df[M.GAIN_HOLDOUT].notna()
    left = (
        [f"{int((~keep).sum())} point(s) without exact truth (other tilts, a utility without a mean, low-ESS tilts)"]
        if (~keep).any()
        else []
    )
    df, kept_cfgs = df[keep].reset_index(drop=True), [c for c, k in zip(cfgs, keep) if k]
    est = estimated_labels(df, rule, units)
    truth = df.copy()
    for c in (M.GAIN_UTILITY, M.lo(M.GAIN_UTILITY), M.hi(M.GAIN_UTILITY)):
        truth[c] = truth["exact"]
    g2 = [exact_gain2(c) for c in kept_cfgs]
    for c in (M.BASE_GAIN2, M.lo(M.BASE_GAIN2), M.hi(M.BASE_GAIN2)):
        truth[c] = g2
    for c in (M.lo(M.GAIN_PROXY), M.hi(M.GAIN_PROXY)):  # selecting on the proxy raises it: known, not tested
        truth[c] = truth[M.GAIN_PROXY]
    truth[M.TILT_ESS_OK], truth[M.POOL_DEPENDENT] = True, False
    exact_lab = label_points(_one_row_per_knob(truth), rule)  # no units: every comparison at face value
    m = exact_lab[["point_id", "curve", "algo", "x", M.KL, "verdict", "peak", "exact"]].merge(
        est[
            [
                "point_id",
                "verdict",
                "peak",
                M.GAIN_UTILITY,
                M.lo(M.GAIN_UTILITY),
                M.hi(M.GAIN_UTILITY),
            ]
        ].rename(
            columns={
                "verdict": "est_verdict",
                "peak": "est_peak",
                M.GAIN_UTILITY: M.GAIN_HOLDOUT,
                M.lo(M.GAIN_UTILITY): M.lo(M.GAIN_HOLDOUT),
                M.hi(M.GAIN_UTILITY): M.hi(M.GAIN_HOLDOUT),
            }
        ),
        on="point_id",
    )
    gold = label_points(df, rule, units)[
        ["point_id", "verdict", M.GAIN_UTILITY, M.lo(M.GAIN_UTILITY), M.hi(M.GAIN_UTILITY)]
    ]
    m = m.merge(gold.rename(columns={"verdict": "gold_verdict"}), on="point_id", how="left")
    law = df.drop_duplicates("point_id").set_index("point_id")
    m["utility_law"] = [
        str(law.loc[p.split("+")[0], M.CURVE_UTILITY]) if M.CURVE_UTILITY in law else "" for p in m["point_id"]
    ]
    m["error_law"] = [str(law.loc[p.split("+")[0], "error_law"]) for p in m["point_id"]]
    heavy_u = m["utility_law"].str.contains("|".join(HEAVY)) & ~m["error_law"].str.contains("|".join(HEAVY))
    over = m["est_verdict"].isin(["est:over-optimized", "est:catastrophic"])
    # peaks, per (curve, optimizer): the knob index of the estimate's peak vs the exact curve's
    ex_t = {(t.algo, t.ids): t for t in turns(exact_lab)}
    rows = []
    for t in turns(est):
        e = next((v for (a, ids), v in ex_t.items() if a == t.algo and set(ids) & set(t.ids)), None)
        if e is None:
            continue
        ki = list(e.knobs)
        ie = ki.index(e.peak_x) if e.peak_x in ki else None
        ih = ki.index(t.peak_x) if t.peak_x in ki and t.peak_gain[1] > 0 else None
        rows.append(
            {
                "curve": e.curve,
                "algo": t.algo,
                "exact_peak": e.peak_x,
                "est_peak": t.peak_x if ih is not None else float("nan"),
                "knobs_apart": abs(ih - ie) if ih is not None and ie is not None else float("inf"),
            }
        )
    peaks = pd.DataFrame(rows)
    cov = (m[M.lo(M.GAIN_HOLDOUT)] <= m["exact"] + 1e-12) & (m["exact"] - 1e-12 <= m[M.hi(M.GAIN_HOLDOUT)])
    gcov = (m[M.lo(M.GAIN_UTILITY)] <= m["exact"] + 1e-12) & (m["exact"] - 1e-12 <= m[M.hi(M.GAIN_UTILITY)])
    moved = m["exact"].abs() > 1e-9  # n = 1: both exactly 0
    return HoldoutScore(
        points=m,
        agreement=agreement(m["verdict"], m["est_verdict"]),
        peaks=int((peaks["knobs_apart"] <= 1).sum()) if len(peaks) else 0,
        curves=len(peaks),
        heavy_utility_over=int((heavy_u & over).sum()),
        heavy_utility_points=int(heavy_u.sum()),
        coverage=float(cov[moved].mean()) if moved.any() else float("nan"),
        gold_coverage=float(gcov[moved].mean()) if moved.any() else float("nan"),
        left_out=left,
        peak_rows=peaks,
    )


def score_text(s: HoldoutScore) -> str:
    a = s.agreement
    lines = [
        f"estimated labels = exact-truth labels on {a.agree} of {a.resolved} points both resolved ({a.rate:.1%}); "
        f"{a.est_unresolved} point(s) exact resolved and the estimate left unresolved",
        f"estimated peak within one knob of the exact peak on {s.peaks} of {s.curves} curves ({s.peaks / s.curves:.1%})"
        if s.curves
        else "no curve to place a peak on",
        f"heavy utility beside a light error: {s.heavy_utility_over} of {s.heavy_utility_points} points "
        "estimated over-optimized or catastrophic",
        f"held-out 95% intervals cover the exact gain on {s.coverage:.1%} of points (gold's own: {s.gold_coverage:.1%})",
        *s.left_out,
    ]
    return "\n".join(lines)
