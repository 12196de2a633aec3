"""The Arena section of `goodhart report` (docs/arena.md): error law x column, at matched KL.

A *column* is a mitigation (a regulariser, a per-prompt KL budget, best-of-n, a reward transform,
an ensemble, the information-matched single proxy) or a stopping rule on the KL tilt; a *cell* is
one error law x one column x one pool size N, over seeds. Each seed's curve (its points along the
KL targets, on one pool) is labelled on its own by eval/goodhart.py `label_points` (the rule the
main verdicts use), so a cell reports:

* the verdict of each seed (the worst label along its curve), the modal one and how many seeds
  agree with it;
* utility gain, utility share and proxy gain at each KL target (mean over seeds, t interval
  across seeds), and gold's best (each seed's largest utility gain, the same way);

and a column, across pool sizes, the trend in N at matched KL (Welch interval over the prompts of
all seeds: each prompt is an independent pool), the theory's prediction (arena_theory.py) and
whether the measurement agrees: `!` only where the verdict disagrees on at least
STABLE of the seeds at every N and the trend does not move toward the prediction, `?` where the
data cannot tell.

`alarm-stop`: the KL tilt stopped, per seed, at the last target before the first whose alarm says
`alarm` (a `watch` does not stop it; none quiet enough: the base policy); its utility, proxy gain
and KL there, and its regret against gold's best on the same seed's curve. `holdout-stop`, where
the KL tilt's rows carry a held-out proxy's gain (HOLDOUT_GAIN, a second proxy's): the KL tilt
stopped at the held-out estimate's peak (its largest lower bound, the verdict rule's way of
picking a peak; none above 0: the base policy), with the same numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.pipeline.report.arena_theory import STABLE, direction
from goodhart.pipeline.sweeps.record import load_results

SEVERITY = ("baseline", "improving", "unresolved", "over-optimized", "catastrophic")
DIVERGENCE_NAME = {"chi2": "chi2", "mixed_chi2_kl": "mixed", "hellinger": "hellinger"}
BASE = "base (no optimization)"
HOLDOUT_GAIN = M.GAIN_HOLDOUT
"""A held-out proxy's gain per point: the utility gain estimated without gold."""
STOPS = {"alarm-stop": "stop", "holdout-stop": "hstop"}
"""The stopping rules on the KL tilt's curve, and the key of each one's stop in a seed's summary."""


@dataclass
class Arena:
    cells: pd.DataFrame
    """One row per (family, error law, column, N)."""
    trends: pd.DataFrame
    """One row per (family, error law, column, KL target): the change from the smallest to the largest N."""
    markdown: str = ""
    table: str = ""
    files: list[Path] = field(default_factory=list)
    labelled: pd.DataFrame | None = None
    """Every point, labelled on its own seed's curve."""


# ============================================================================================
# Which column a point belongs to
# ============================================================================================
def mitigation_of(cfg: Any) -> str:
    """`kl`, `chi2`, `kl_budget`, `bon`, `clip`, `ens_min`, `ens_min(rho=0.5)`, `info`, ... (several
    joined by `+`) from a point's RunConfig."""
    parts = []
    if cfg.algo.kind == "bon":
        parts.append("bon")
    div = getattr(cfg.algo, "divergence", "kl")
    if div != "kl":
        parts.append(DIVERGENCE_NAME.get(div, div))
    if getattr(getattr(cfg.algo, "kl", None), "per_prompt", False):
        parts.append("kl_budget")
    ens = getattr(cfg.reward, "ensemble", None)
    if ens is not None:
        name = "info" if ens.combine == "info" else f"ens_{ens.combine}"
        parts.append(name + (f"(rho={ens.rho:g})" if getattr(ens, "rho", 0) else ""))
    if getattr(cfg.reward, "type", None) == "ensemble":  # a learned ensemble (reward type ensemble)
        parts.append(f"ens_{cfg.reward.combine}")
    t = getattr(cfg.reward, "transform", None)
    if t is not None:
        parts.append(t.kind)
    return "+".join(parts) or "kl"


def point_config(path: Path) -> Any:
    """A point's config.yaml (complete, as the sweep wrote it: no base chain) as a validated
    RunConfig; parsed by libyaml when it is there."""
    import yaml

    from goodhart.pipeline.config.load import load_config, validate

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return load_config(path)
    return validate(yaml.load(path.read_text(), Loader=loader) or {}, source=str(path))


def _cell_columns(root: Path, df: pd.DataFrame) -> pd.DataFrame:
    """`column` and `family` (pool: the exact optima on the base pool; else the trained optimizer)
    per point, reading one config per distinct (proxy, optimizer): the proxy identity and the
    row's algo label (tilt-chi2, tilt-budget, bon, ...) tell every other point of it apart."""
    df = df.copy()
    proxy = df[M.CURVE_PROXY].astype(str) if M.CURVE_PROXY in df else pd.Series("", index=df.index)
    keys = list(zip(proxy, df["algo"].astype(str)))
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    cols, fams = [], []
    for k, pid in zip(keys, df["point_id"].astype(str)):
        if k not in seen:
            cfg = point_config(root / "points" / pid / "config.yaml")
            kind = cfg.algo.kind
            seen[k] = (mitigation_of(cfg), "pool" if kind in ("tilt", "bon") else kind)
        cols.append(seen[k][0])
        fams.append(seen[k][1])
    df["column"], df["family"] = cols, fams
    return df


def is_arena(root: Path, df: pd.DataFrame) -> bool:
    """A sweep with at least one mitigated or KL-matched point."""
    return any(
        str(c).startswith(("set:algo.divergence", "set:reward.transform", "set:reward.ensemble", "set:algo.kl.target"))
        for c in df
    )


# ============================================================================================
# Per seed: one curve
# ============================================================================================
LABEL_COLUMNS = (
    "point_id",
    "status",
    "algo",
    "error_law",
    "x_name",
    "x",
    "seed",
    *M.CURVE_KEYS,
    M.KL,
    M.lo(M.KL),
    M.hi(M.KL),
    M.GAIN_PROXY,
    M.lo(M.GAIN_PROXY),
    M.hi(M.GAIN_PROXY),
    M.GAIN_UTILITY,
    M.lo(M.GAIN_UTILITY),
    M.hi(M.GAIN_UTILITY),
    M.BASE_SHARE2,
    M.BASE_GAIN2,
    M.lo(M.BASE_GAIN2),
    M.hi(M.BASE_GAIN2),
    M.N_SAMPLES,
    M.N_PROMPTS,
    M.KL_MAX,
    M.BON_N,
    M.TILT_ESS_OK,
    M.POOL_DEPENDENT,
    M.KL_TARGET,
    M.KL_AT_LIMIT,
    M.ALARM_LEVEL,
)


def label_seeds(df: pd.DataFrame, rule: Any, units: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """Every point labelled along its own seed's curve of its own column: one label_points call
    on a slim copy of the table (only the columns the rule reads; thousands of points) whose curve
    identity also names the column and the seed."""
    from goodhart.eval.goodhart import label_points

    slim = df[[c for c in (*LABEL_COLUMNS, "column", "family") if c in df]].copy()
    for c in slim.columns:
        if slim[c].dtype != object and not pd.api.types.is_numeric_dtype(slim[c]):
            slim[c] = slim[c].astype(object)  # arrow strings: a row at a time they cost ~10x
    seed = slim["seed"].astype(str) if "seed" in slim else "0"
    ident = " | column " + slim["column"].astype(str) + " | seed " + seed
    if M.CURVE_PROXY in slim:
        slim[M.CURVE_PROXY] = slim[M.CURVE_PROXY].astype(str) + ident
    else:
        slim["error_law"] = slim["error_law"].astype(str) + ident
    slim, alias = _one_argmax(slim)
    lab = label_points(slim, rule, units)
    keep = ["point_id", "verdict", "why", "share", "near_base_margin", "share0", "mdd", "peak"]
    lab = lab[[c for c in keep if c in lab]]
    if alias:  # the argmax's copies read its label
        by_id = lab.set_index(lab["point_id"].astype(str)).drop(columns="point_id")
        copies = by_id.loc[list(alias.values())].reset_index(drop=True)
        copies.insert(0, "point_id", list(alias.keys()))
        lab = pd.concat([lab, copies], ignore_index=True)
    return df.merge(lab, on="point_id", how="left")


def _one_argmax(slim: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Targets at or past a curve's limit (kl/at_limit = 1 on every prompt) are one policy, the
    pool argmax: only the first of them is labelled, the others are its copies ({copy's point id:
    the first's}). Labelling the copies as points would add comparisons along the curve (the
    verdict rule's Holm correction) and move verdicts when the grid is extended past its end."""
    if M.KL_AT_LIMIT not in slim or "x" not in slim:
        return slim, {}
    lim = pd.to_numeric(slim[M.KL_AT_LIMIT], errors="coerce").fillna(0).to_numpy() >= 1
    if lim.sum() < 2:
        return slim, {}
    keys = [c for c in (*M.CURVE_KEYS, "error_law", "column", "seed", M.N_SAMPLES, M.N_PROMPTS) if c in slim]
    sub = slim[lim].assign(_x=pd.to_numeric(slim.loc[lim, "x"], errors="coerce")).sort_values("_x", kind="stable")
    first = sub.groupby([sub[k].astype(str) for k in keys], sort=False)["point_id"].transform("first")
    dup = first != sub["point_id"]
    alias = dict(zip(sub.loc[dup, "point_id"].astype(str), first[dup].astype(str)))
    return slim.drop(index=sub.index[dup.to_numpy()]), alias


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


def _worst(verdicts: list[str]) -> str:
    return max(verdicts, key=lambda v: SEVERITY.index(v) if v in SEVERITY else -1)


def seed_summary(lab: pd.DataFrame) -> dict[str, Any]:
    """One seed's curve: its worst verdict, gold's best, the numbers at each KL target and (with
    the alarm in its rows) where alarm-stop stops."""
    lab = lab.sort_values(M.KL).reset_index(drop=True)
    verdict = _worst(lab["verdict"].astype(str).tolist())
    u = lab[M.GAIN_UTILITY].astype(float)
    best = int(u.idxmax())
    out: dict[str, Any] = {
        "verdict": verdict,
        "best_utility": float(u[best]),
        "best_kl": float(lab.loc[best, M.KL]),
        "max_kl": float(lab[M.KL].max()),
        "targets": {},
    }
    if "x_name" in lab and (lab["x_name"] == "kl_target").any():
        for _, r in lab[lab["x_name"] == "kl_target"].iterrows():
            out["targets"][float(r["x"])] = {
                "utility": _num(r[M.GAIN_UTILITY]),
                "proxy": _num(r[M.GAIN_PROXY]),
                "share": _num(r.get("share")),
                "kl": _num(r[M.KL]),
                "point_id": str(r["point_id"]),
                "verdict": str(r["verdict"]),
            }
    if M.ALARM_LEVEL in lab and lab[M.ALARM_LEVEL].notna().any():
        out["stop"] = alarm_stop(lab)
    if HOLDOUT_GAIN in lab and lab[HOLDOUT_GAIN].notna().any():
        out["hstop"] = holdout_stop(lab)
    return out


def _stop_at(lab: pd.DataFrame, k: int | None) -> dict[str, Any]:
    """A stopping rule's numbers at point k of lab (sorted by KL; None: the base policy)."""
    best = float(lab[M.GAIN_UTILITY].astype(float).max())
    if k is None:
        return {"utility": 0.0, "proxy": 0.0, "kl": 0.0, "verdict": BASE, "regret": best, "point_id": None}
    r = lab.iloc[k]
    u = float(r[M.GAIN_UTILITY])
    return {
        "utility": u,
        "proxy": float(r[M.GAIN_PROXY]),
        "kl": float(r[M.KL]),
        "verdict": str(r["verdict"]),
        "regret": best - u,
        "point_id": str(r["point_id"]),
    }


def holdout_stop(lab: pd.DataFrame) -> dict[str, Any]:
    """The point whose held-out gain has the largest lower bound (ties: the larger estimate); the
    base policy when no lower bound is above 0."""
    lab = lab.sort_values(M.KL).reset_index(drop=True)
    est = lab[HOLDOUT_GAIN].astype(float)
    lo = lab[M.lo(HOLDOUT_GAIN)].astype(float) if M.lo(HOLDOUT_GAIN) in lab else est
    keys = list(zip(lo.fillna(-np.inf), est.fillna(-np.inf)))
    k = int(max(range(len(keys)), key=lambda i: keys[i]))
    return _stop_at(lab, k if keys[k][0] > 0 else None)


def alarm_stop(lab: pd.DataFrame) -> dict[str, Any]:
    """Walking the curve up in KL: the last point before the first whose alarm level is `alarm`
    (`watch` does not stop; every point quiet or watch: the last one); none before it: the base
    policy (gain 0 at KL 0). Its numbers, and the regret against gold's best on this curve."""
    lab = lab.sort_values(M.KL).reset_index(drop=True)
    levels = lab[M.ALARM_LEVEL].fillna("quiet").astype(str).tolist()
    k = len(levels) - 1
    for i, lev in enumerate(levels):
        if lev == "alarm":
            k = i - 1
            break
    return _stop_at(lab, k if k >= 0 else None)


def alarm_knob(lab: pd.DataFrame) -> int | None:
    """Index (into lab sorted by KL) of alarm-stop's point; None: the base policy."""
    s = alarm_stop(lab)
    if s["point_id"] is None:
        return None
    srt = lab.sort_values(M.KL).reset_index(drop=True)
    return int(np.flatnonzero(srt["point_id"].astype(str) == s["point_id"])[0])


# ============================================================================================
# Per cell: seeds together
# ============================================================================================
def measured(verdict: str) -> str:
    """catastrophic | unresolved | no catastrophe: what a verdict says of a catastrophe."""
    return verdict if verdict in ("catastrophic", "unresolved") else "no catastrophe"


def _nanmean(values: list[float]) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def across(values: list[float], ci: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): t interval across seeds (nan bounds with fewer than 2)."""
    from goodhart.eval.bootstrap import t_ci

    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    return t_ci(x, ci) if x.size else (float("nan"),) * 3


def cell_row(seeds: dict[int, dict[str, Any]], ci: float) -> dict[str, Any]:
    """A cell from its seeds' summaries."""
    verdicts = [s["verdict"] for s in seeds.values()]
    counts = Counter(verdicts)
    top = max(counts.values())
    modal = _worst([v for v, c in counts.items() if c == top])  # a tie: the more severe
    classes = Counter(measured(v) for v in verdicts)
    row: dict[str, Any] = {
        **_agreement(len(seeds), modal, top, counts, classes),
    }
    b = across([s["best_utility"] for s in seeds.values()], ci)
    row["best_utility"], row["best_utility/lo"], row["best_utility/hi"] = b
    row["best_kl"] = float(np.mean([s["best_kl"] for s in seeds.values()]))
    targets = sorted({t for s in seeds.values() for t in s["targets"]})
    for t in targets:
        at = [s["targets"][t] for s in seeds.values() if t in s["targets"]]
        m = across([a["utility"] for a in at], ci)
        row[f"U@{t:g}"], row[f"U@{t:g}/lo"], row[f"U@{t:g}/hi"] = m
        row[f"share@{t:g}"] = _nanmean([a["share"] for a in at])
        row[f"proxy@{t:g}"] = float(np.mean([a["proxy"] for a in at]))
        row[f"kl@{t:g}"] = float(np.mean([a["kl"] for a in at]))
    if all("stop" in s for s in seeds.values()) and seeds:
        st = [s["stop"] for s in seeds.values()]
        row["stop_utility"], row["stop_utility/lo"], row["stop_utility/hi"] = across([x["utility"] for x in st], ci)
        row["stop_regret"], row["stop_regret/lo"], row["stop_regret/hi"] = across([x["regret"] for x in st], ci)
        row["stop_kl"] = float(np.mean([x["kl"] for x in st]))
        row["stop_proxy"] = float(np.mean([x["proxy"] for x in st]))
    return row


def stop_cell(seeds: dict[int, dict[str, Any]], ci: float, key: str = "stop") -> dict[str, Any]:
    """A stopping rule's own cell from the KL tilt's seeds (`key`: its stop in each seed's summary):
    its verdict per seed is the label of the point it stops at (`base` before the first), its
    numbers its own (one point per seed), its regret against gold's best on the same curve."""
    verdicts = [s[key]["verdict"] for s in seeds.values()]
    counts = Counter(verdicts)
    top = max(counts.values())
    modal = _worst([v for v, c in counts.items() if c == top])
    classes = Counter(measured(v) for v in verdicts)
    st = [s[key] for s in seeds.values()]
    u = across([x["utility"] for x in st], ci)
    reg = across([x["regret"] for x in st], ci)
    return {
        **_agreement(len(seeds), modal, top, counts, classes),
        "best_utility": u[0],
        "best_utility/lo": u[1],
        "best_utility/hi": u[2],
        "best_kl": float(np.mean([x["kl"] for x in st])),
        "stop_utility": u[0],
        "stop_utility/lo": u[1],
        "stop_utility/hi": u[2],
        "stop_regret": reg[0],
        "stop_regret/lo": reg[1],
        "stop_regret/hi": reg[2],
        "stop_kl": float(np.mean([x["kl"] for x in st])),
        "stop_proxy": float(np.mean([x["proxy"] for x in st])),
    }


# ============================================================================================
# Across pool sizes: the trend in N, the prediction, the agreement
# ============================================================================================
def welch(a: np.ndarray, b: np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    """mean(b) - mean(a) with a Welch t interval (nan bounds when either has < 2 values)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return (float("nan"),) * 3
    d = float(b.mean() - a.mean())
    if a.size < 2 or b.size < 2:
        return d, float("nan"), float("nan")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    h = float(stats.t.ppf(0.5 + ci / 2, dof) * se)
    return d, d - h, d + h


def trend_rows(
    by_n: dict[int, dict[int, dict[str, Any]]], units: dict[str, dict[str, np.ndarray]], ci: float
) -> list[dict[str, Any]]:
    """From the smallest to the largest N, at each KL target both reached: the change of the
    utility gain (Welch over prompts, every seed's prompts together), of the mean share and of
    the mean proxy gain; and of gold's best (Welch over seeds)."""
    ns = sorted(by_n)
    if len(ns) < 2:
        return []
    n1, n2 = ns[0], ns[-1]
    s1, s2 = by_n[n1], by_n[n2]

    def prompts(seeds: dict[int, dict[str, Any]], t: float) -> np.ndarray:
        parts = [
            units[s["targets"][t]["point_id"]]["gain_utility"]
            for s in seeds.values()
            if t in s["targets"] and s["targets"][t]["point_id"] in units
        ]
        return np.concatenate(parts) if parts else np.array([])

    out = []
    common = sorted({t for s in s1.values() for t in s["targets"]} & {t for s in s2.values() for t in s["targets"]})
    for t in common:
        d = welch(prompts(s1, t), prompts(s2, t), ci)
        row = {"target": t, "n1": n1, "n2": n2, "dU": d[0], "dU/lo": d[1], "dU/hi": d[2]}
        for k in ("share", "proxy", "kl"):
            a = [s["targets"][t][k] for s in s1.values() if t in s["targets"]]
            b = [s["targets"][t][k] for s in s2.values() if t in s["targets"]]
            row[f"{k}1"], row[f"{k}2"] = _nanmean(a), _nanmean(b)
        row["U1"] = float(np.mean([s["targets"][t]["utility"] for s in s1.values() if t in s["targets"]]))
        row["U2"] = float(np.mean([s["targets"][t]["utility"] for s in s2.values() if t in s["targets"]]))
        out.append(row)
    d = welch([s["best_utility"] for s in s1.values()], [s["best_utility"] for s in s2.values()], ci)
    out.append({"target": float("nan"), "n1": n1, "n2": n2, "dU": d[0], "dU/lo": d[1], "dU/hi": d[2], "best": True})
    return out


def agreement(pred: str, cells: list[dict[str, Any]], trend: list[dict[str, Any]]) -> str:
    """agrees | disagrees | undecided | n/a for a column at one law, from its cells (one per N,
    N ascending) and its trend in N at the grid's end and at its best.

    Predicted catastrophic: agrees when a majority of the seeds read it at the largest N, or the
    utility gain at the end or the best falls significantly with N (toward base, the prediction
    being about N -> inf); disagrees only when at least STABLE of the seeds read no catastrophe at
    every N *and* the trend moves away from base (a significant rise, none falling). Predicted no
    catastrophe: disagrees when at least STABLE of the seeds read catastrophic at every N; agrees
    when a majority read no catastrophe at the largest N. Anything else: undecided."""
    if pred == "none" or not cells:
        return "n/a"

    def share(c: dict[str, Any], k: str) -> float:
        return c[k] / c["seeds"] if c["seeds"] else 0.0

    last = cells[-1]
    if pred == "catastrophic":
        key = [r for r in trend if r.get("best") or r["target"] == _end(trend)]
        dirs = [direction(r["dU"], r["dU/lo"], r["dU/hi"]) for r in key]
        if share(last, "n_catastrophic") > 0.5 or "down" in dirs:
            return "agrees"
        away = "up" in dirs and all(r["dU"] >= 0 for r in key)
        if all(share(c, "n_no_catastrophe") >= STABLE for c in cells) and away:
            return "disagrees"
        return "undecided"
    if all(share(c, "n_catastrophic") >= STABLE for c in cells):
        return "disagrees"
    if share(last, "n_no_catastrophe") > 0.5:
        return "agrees"
    return "undecided"


def _end(trend: list[dict[str, Any]]) -> float:
    ts = [r["target"] for r in trend if not r.get("best")]
    return max(ts) if ts else float("nan")


def arena_cells(root: Path, df: pd.DataFrame, rule: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(cells, trends, labelled points) of the sweep's finished points."""
    from goodhart.pipeline.report.arena_theory import predict
    from goodhart.pipeline.report.units import load_units

    df = _cell_columns(root, df)
    units = load_units(root, df)
    lab = label_seeds(df, rule, units)
    n_col = M.N_SAMPLES if M.N_SAMPLES in lab else None
    lab["N"] = lab[n_col].astype(float).astype(int) if n_col else 0
    if "seed" not in lab:
        lab["seed"] = 0
    summaries: dict[tuple, dict[int, dict[int, dict[str, Any]]]] = {}
    for (fam, law, col, n, seed), g in lab.groupby(["family", "error_law", "column", "N", "seed"], sort=False):
        summaries.setdefault((fam, law, col), {}).setdefault(int(n), {})[int(seed)] = seed_summary(g)
    rows, trends = [], []
    for (fam, law, col), by_n in summaries.items():
        cols: list[tuple[str, str | None]] = [(col, None)]
        if col == "kl":
            for name, key in STOPS.items():
                if all(key in s for seeds in by_n.values() for s in seeds.values()):
                    cols.append((name, key))
        for name, stop in cols:
            p = predict(law, name)
            per_n = []
            for n in sorted(by_n):
                c = stop_cell(by_n[n], rule.ci, stop) if stop else cell_row(by_n[n], rule.ci)
                per_n.append({"family": fam, "error_law": law, "column": name, "N": n, **c})
            tr = [] if stop else trend_rows(by_n, units, rule.ci)
            agree = agreement(p.verdict, per_n, tr)
            for c in per_n:
                c.update(
                    {
                        "predicted": p.verdict,
                        "predicted_fixed_kl": p.fixed_kl,
                        "predicted_why": p.why,
                        "agreement": agree,
                    }
                )
            rows += per_n
            for r in tr:
                r.update({"family": fam, "error_law": law, "column": name})
                r["fixed_kl"] = p.fixed_kl
            trends += tr
    return pd.DataFrame(rows), pd.DataFrame(trends), lab


def arena_report(root: Path, rule: Any, out_dir: Path, prepare: Any = None) -> Arena | None:
    """The Arena section for a sweep with mitigated or KL-matched points, else None. prepare(root,
    df) -> df: what the report's own verdicts read beside results.csv (pipeline/report/verdicts.py
    backfill: best-of-2's gain on each pool where an older point did not record it)."""
    from goodhart.pipeline.report.arena_render import heatmap, markdown, matrix_text

    f = root / "results.csv"
    if not f.is_file():
        return None
    df = load_results(f)
    if "status" in df:
        df = df[df["status"] == "done"]
    if df.empty or not is_arena(root, df):
        return None
    if prepare is not None:
        df = prepare(root, df)
    cells, trends, lab = arena_cells(root, df, rule)
    png = heatmap(cells, out_dir / "arena_heatmap.png")
    cells.to_csv(out_dir / "arena.csv", index=False)
    trends.to_csv(out_dir / "arena_trend.csv", index=False)
    files = [png, out_dir / "arena.csv", out_dir / "arena_trend.csv"]
    return Arena(cells, trends, markdown(cells, trends, png), matrix_text(cells, trends), files, lab)


def _agreement(seeds: int, modal: str, top: int, counts: Counter, classes: Counter) -> dict[str, Any]:
    """A cell's seeds and how they agree: the modal verdict, how many seeds give it, every verdict's
    count, and the seeds per class (catastrophic, unresolved, no catastrophe)."""
    return {
        "seeds": seeds,
        "verdict": modal,
        "agree": top,
        "verdicts": " ".join(f"{v}:{c}" for v, c in sorted(counts.items(), key=lambda kv: -kv[1])),
        "n_catastrophic": classes.get("catastrophic", 0),
        "n_unresolved": classes.get("unresolved", 0),
        "n_no_catastrophe": classes.get("no catastrophe", 0),
    }
