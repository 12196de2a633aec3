"""The Arena section of `goodhart report` (issue 20; docs/arena.md): error law x mitigation.

A *cell* is one error law, one mitigation (the regulariser `algo.divergence`, a reward
`transform`, an `ensemble`) and one optimizer, read along its own knob. Each cell is labelled on
its own by `goodhart.eval.goodhart.label_points` (so a chi^2 tilt is not judged against the KL
tilt's peak on the same pool), and reports:

* the cell's verdict: the worst label along the curve (catastrophic > over-optimized >
  unresolved > improving > baseline), with the KL where it first appears;
* gold's best knob: the labeller's peak, its utility gain and KL;
* the alarm's knob (alarm-chosen stopping, Gao et al. 2022's "the KL penalty acts like early
  stopping"): walking the curve up in KL, the last point before the first the gold-free alarm
  reads `alarm` (`watch` does not stop it; the first at `alarm`: the base policy, gain 0 at KL 0); its utility and
  proxy gain, and the regret against gold's best in utility and in nats of KL;
* the theory's prediction (docs/arena.md) and whether the measurement agrees.

The `alarm-stop` column is the KL tilt stopped at its alarm's knob."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.pipeline.sweeps.record import load_results

SEVERITY = ("baseline", "improving", "unresolved", "over-optimized", "catastrophic")
MITIGATIONS = (
    "kl",
    "chi2",
    "mixed",
    "hellinger",
    "clip",
    "log_sigmoid",
    "rank",
    "ens_min",
    "ens_mean",
    "ens_uwo",
    "alarm-stop",
)
DIVERGENCE_NAME = {"chi2": "chi2", "mixed_chi2_kl": "mixed", "hellinger": "hellinger"}


@dataclass
class Arena:
    cells: pd.DataFrame
    markdown: str = ""
    table: str = ""
    files: list[Path] = field(default_factory=list)


# ============================================================================================
# Which cell a point belongs to
# ============================================================================================
def mitigation_of(cfg: Any) -> str:
    """`kl`, `chi2`, `clip`, `ens_min`, ... (several joined by `+`) from a point's RunConfig."""
    parts = []
    div = getattr(cfg.algo, "divergence", "kl")
    if div != "kl":
        parts.append(DIVERGENCE_NAME.get(div, div))
    ens = getattr(cfg.reward, "ensemble", None)
    if ens is not None:
        parts.append(f"ens_{ens.combine}")
    if getattr(cfg.reward, "type", None) == "ensemble":  # a learned ensemble (reward type ensemble)
        parts.append(f"ens_{cfg.reward.combine}")
    t = getattr(cfg.reward, "transform", None)
    if t is not None:
        parts.append(t.kind)
    return "+".join(parts) or "kl"


def point_config(path: Path) -> Any:
    """A point's config.yaml (complete, as the sweep wrote it: no base chain) as a validated
    RunConfig; parsed by libyaml when it is there (an arena has hundreds of points)."""
    import yaml

    from goodhart.pipeline.config.load import load_config, validate

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return load_config(path)
    return validate(yaml.load(path.read_text(), Loader=loader) or {}, source=str(path))


def _cell_columns(root: Path, df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    mit, opt = [], []
    for pid in df["point_id"]:
        cfg = point_config(root / "points" / str(pid) / "config.yaml")
        mit.append(mitigation_of(cfg))
        opt.append(cfg.algo.kind)
    df["mitigation"], df["optimizer"] = mit, opt
    return df


def is_arena(root: Path, df: pd.DataFrame) -> bool:
    """A sweep with at least one mitigated point (a divergence other than KL, a transform or an ensemble)."""
    return any(str(c).startswith(("set:algo.divergence", "set:reward.transform", "set:reward.ensemble")) for c in df)


# ============================================================================================
# The theory's prediction per cell (docs/arena.md)
# ============================================================================================
def law_class(law: str) -> tuple[bool, bool]:
    """(heavier than every exponential, infinite variance) for an error-law label."""
    from goodhart.pipeline.config.schema import parse_law

    d = parse_law(law.split(" x")[0])
    name = d["name"]
    heavy = name in ("student_t", "lognormal", "pareto", "levy")
    inf_var = (
        name == "levy"
        or (name == "student_t" and d.get("df", 2.0) <= 2)
        or (name == "pareto" and d.get("alpha", 1.5) <= 2)
    )
    return heavy, inf_var


def predict(law: str, mitigation: str) -> tuple[str, str]:
    """(catastrophic | no catastrophe, why) for an independent error of this law, light V."""
    heavy, inf_var = law_class(law)
    base = mitigation.split("+")[0]
    if any(t in mitigation for t in ("clip", "log_sigmoid", "rank")):
        return "no catastrophe", "a transform bounded above makes every error light"
    if base in ("chi2", "mixed"):
        return (
            ("catastrophic", "Var(X) = inf: chi^2 bounds gain only by sqrt(Var(r) 2 chi^2)")
            if inf_var
            else (
                "no catastrophe",
                "finite Var(X): linear tilt keeps share Var(V)/Var(U) until truncation",
            )
        )
    if base == "alarm-stop":
        return "no catastrophe", "the alarm stops before the tail is exploited"
    why = {
        "ens_min": "min of k: Pareto(alpha) -> Pareto(k alpha), lighter but still heavy",
        "ens_mean": "the mean keeps the tail index",
        "ens_uwo": "mean - lam std: the tail of >= 2 large members, lighter but still heavy",
    }.get(base, "Kwa et al. 2024: catastrophe iff X heavier than every exponential")
    return ("catastrophic" if heavy else "no catastrophe"), why


# ============================================================================================
# Per cell
# ============================================================================================
def alarm_knob(lab: pd.DataFrame) -> int | None:
    """Index (into lab, sorted by KL) of the last point before the first ``alarm``; None when the
    very first point is already at ``alarm`` (stop at the base policy). ``watch`` does not stop: it
    says the light null is rejected somewhere (on a heavy pool the pool's tail test rejects at every
    knob), not that this point's marginal gain is bought in the tail."""
    levels = lab[M.ALARM_LEVEL].fillna("quiet").astype(str).tolist() if M.ALARM_LEVEL in lab else []
    stop = None
    for i, lev in enumerate(levels):
        if lev == "alarm":
            break
        stop = i
    return stop if levels else len(lab) - 1


def cell_summary(lab: pd.DataFrame) -> dict[str, Any]:
    """The numbers of one cell from its labelled points (any order)."""
    lab = lab.sort_values(M.KL).reset_index(drop=True)
    verdicts = lab["verdict"].astype(str)
    worst = max(verdicts, key=lambda v: SEVERITY.index(v) if v in SEVERITY else -1)
    first = lab[verdicts == worst].iloc[0]
    # gold's best knob: the largest utility gain on the curve (flagged points included: what the
    # pool shows at that knob is what that knob gives on this pool)
    p = lab.loc[int(lab[M.GAIN_UTILITY].astype(float).idxmax())]
    k = alarm_knob(lab)
    if k is None:
        a_u, a_p, a_kl, a_v, a_x = 0.0, 0.0, 0.0, "base (no optimization)", float("nan")
    else:
        a = lab.iloc[k]
        a_u, a_p, a_kl, a_v, a_x = (
            float(a[M.GAIN_UTILITY]),
            float(a[M.GAIN_PROXY]),
            float(a[M.KL]),
            str(a["verdict"]),
            float(a["x"]),
        )
    dropped = float(first[M.TILT_DROPPED]) if M.TILT_DROPPED in lab and pd.notna(first.get(M.TILT_DROPPED)) else 0.0
    untrunc = lab[lab[M.TILT_DROPPED].fillna(0) == 0] if M.TILT_DROPPED in lab else lab.iloc[:0]
    share_u = float("nan")
    if len(untrunc):
        u = untrunc.iloc[-1]
        share_u = float(u[M.GAIN_UTILITY]) / float(u[M.GAIN_PROXY]) if float(u[M.GAIN_PROXY]) > 0 else float("nan")
    return {
        "verdict": worst,
        "verdict_kl": float(first[M.KL]),
        **resolution(first),
        "verdict_dropped": dropped,
        "best_utility": float(p[M.GAIN_UTILITY]),
        "best_kl": float(p[M.KL]),
        "best_x": float(p["x"]),
        "alarm_utility": a_u,
        "alarm_proxy": a_p,
        "alarm_kl": a_kl,
        "alarm_x": a_x,
        "alarm_verdict": a_v,
        "regret_utility": float(p[M.GAIN_UTILITY]) - a_u,
        "regret_nats": float(p[M.KL]) - a_kl,
        "max_kl": float(lab[M.KL].max()),
        "share_untruncated": share_u,
        "points": len(lab),
    }


def _num(r: pd.Series, name: str) -> float:
    v = pd.to_numeric(r.get(name, np.nan), errors="coerce")
    return float(v) if pd.notna(v) else float("nan")


def resolution(r: pd.Series) -> dict[str, float]:
    """What the verdict rule read at a cell's worst point (eval/goodhart.py): the utility gain's
    interval against the near-base margin m, the utility share's upper bound against share0, and,
    where the estimate itself is below m but its interval reaches above it (`unresolved` rather
    than `catastrophic`), about how many prompts the t interval needs to fall below m:
    P x (half-width / (m - estimate))^2 (the interval shrinks as 1/sqrt(P) at a fixed spread)."""
    u, lo, hi = _num(r, M.GAIN_UTILITY), _num(r, M.lo(M.GAIN_UTILITY)), _num(r, M.hi(M.GAIN_UTILITY))
    m, P = _num(r, "near_base_margin"), _num(r, M.N_PROMPTS)
    need = float("nan")
    if np.isfinite([u, hi, m, P]).all() and hi >= m:
        need = P * ((hi - u) / (m - u)) ** 2 if u < m else float("inf")
    return {
        "verdict_why": str(r.get("why", "")),
        "verdict_mdd": _num(r, "mdd"),
        "verdict_utility": u,
        "verdict_utility_lo": lo,
        "verdict_utility_hi": hi,
        "near_base_margin": m,
        "verdict_share_hi": _num(r, "share/hi"),
        "share0": _num(r, "share0"),
        "n_prompts": P,
        "prompts_for_near_base": need,
    }


def linear_share(root: Path, pool_file: Any) -> float:
    """Var(V)/Var(U) as the pool has it: the utility share of a chi^2 (linear) tilt without
    truncation, sum over prompts of Cov(V, U) / sum of Var(U) (eval/divergences.py)."""
    if not isinstance(pool_file, str) or not (root / pool_file).is_file():
        return float("nan")
    z = np.load(root / pool_file)
    u, v = z["proxy"], z["utility"]
    cov = np.mean((u - u.mean(1, keepdims=True)) * (v - v.mean(1, keepdims=True)), axis=1)
    return float(cov.sum() / u.var(1).sum())


def arena_cells(root: Path, df: pd.DataFrame, rule: Any) -> pd.DataFrame:
    """One row per (optimizer, error law, mitigation) of the sweep's finished points."""
    from goodhart.eval.goodhart import label_points
    from goodhart.pipeline.report.units import load_units

    df = _cell_columns(root, df)
    units = load_units(root, df)
    rows = []
    for (opt, law, mit), g in df.groupby(["optimizer", "error_law", "mitigation"], sort=False):
        lab = label_points(g, rule, {k: v for k, v in units.items() if k in set(g["point_id"].astype(str))})
        s = cell_summary(lab)
        if mit == "chi2":
            s["share_linear"] = linear_share(root, g["pool_file"].iloc[0] if "pool_file" in g else None)
        rows.append({"optimizer": opt, "error_law": law, "mitigation": mit, **s})
        if mit == "kl":  # alarm-chosen stopping as its own mitigation: the KL tilt stopped by the alarm
            stop = {
                **s,
                "verdict": s["alarm_verdict"],
                "verdict_kl": s["alarm_kl"],
            }
            rows.append({"optimizer": opt, "error_law": law, "mitigation": "alarm-stop", **stop})
    cells = pd.DataFrame(rows)
    pred = [predict(r.error_law, r.mitigation) for r in cells.itertuples()]
    cells["predicted"], cells["predicted_why"] = [p[0] for p in pred], [p[1] for p in pred]
    cells["measured"] = [measured(v) for v in cells["verdict"]]
    cells["agreement"] = [
        "undecided" if m == "unresolved" else "agrees" if m == p else "disagrees"
        for m, p in zip(cells["measured"], cells["predicted"])
    ]
    cells["agrees"] = cells["agreement"] != "disagrees"
    return cells


def measured(verdict: str) -> str:
    """catastrophic | unresolved | no catastrophe: what a cell's worst verdict says of the
    prediction. `unresolved` (the intervals cannot tell near base from over-optimized, or no
    significant drop) neither confirms nor refutes a catastrophe."""
    return verdict if verdict in ("catastrophic", "unresolved") else "no catastrophe"


# ============================================================================================
# Tables, heat map, markdown
# ============================================================================================
SHORT = {
    "catastrophic": "CAT",
    "over-optimized": "over",
    "improving": "impr",
    "unresolved": "unres",
    "baseline": "base",
    "base (no optimization)": "base",
}


def _order(values: list[str], first: tuple[str, ...]) -> list[str]:
    return [v for v in first if v in values] + [v for v in values if v not in first]


def matrix_text(cells: pd.DataFrame) -> str:
    """Per optimizer: law x mitigation, each cell `verdict best-U | alarm-U (proxy gain there)`."""
    from goodhart.pipeline.sweeps.tables import render

    out = []
    for opt, g in cells.groupby("optimizer", sort=False):
        mits = _order(list(dict.fromkeys(g["mitigation"])), MITIGATIONS)
        rows = []
        for law in dict.fromkeys(g["error_law"]):
            row = [law]
            for m in mits:
                c = g[(g["error_law"] == law) & (g["mitigation"] == m)]
                if c.empty:
                    row.append("")
                    continue
                c = c.iloc[0]
                flag = {"disagrees": "!", "undecided": "?"}.get(str(c.get("agreement", "")), "")
                row.append(
                    f"{SHORT.get(c['verdict'], c['verdict'])}{flag} {c['best_utility']:.2f}|{c['alarm_utility']:.2f}"
                    f" ({c['alarm_proxy']:.3g})"
                )
            rows.append(row)
        out.append(
            f"optimizer {opt}: verdict, utility gain at gold's best knob | at the alarm's knob (proxy gain there); "
            "! = disagrees with the prediction, ? = unresolved: cannot tell\n" + render(["error law", *mits], rows)
        )
    return "\n\n".join(out)


def heatmap(cells: pd.DataFrame, path: Path) -> Path:
    """Two panels per optimizer: utility gain at gold's best knob, and at the alarm's knob; each
    cell says its verdict, the proxy gain at the alarm's knob, and is outlined in red where the
    measurement disagrees with the theory's prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    opts = list(dict.fromkeys(cells["optimizer"]))
    laws = list(dict.fromkeys(cells["error_law"]))
    mits = _order(list(dict.fromkeys(cells["mitigation"])), MITIGATIONS)
    fig, axes = plt.subplots(
        2 * len(opts),
        1,
        figsize=(1.05 * len(mits) + 3.2, 2 * (0.62 * len(laws) + 1.2) * len(opts) + 0.6),
        squeeze=False,
    )
    vmax = float(np.nanmax(np.abs(cells[["best_utility", "alarm_utility"]].to_numpy(float)))) or 1.0
    for oi, opt in enumerate(opts):
        g = cells[cells["optimizer"] == opt]
        for pi, (col, title) in enumerate(
            (("best_utility", "at gold's best knob"), ("alarm_utility", "at the alarm's knob"))
        ):
            ax = axes[2 * oi + pi][0]
            m = np.full((len(laws), len(mits)), np.nan)
            for r in g.itertuples():
                m[laws.index(r.error_law), mits.index(r.mitigation)] = getattr(r, col)
            im = ax.imshow(m, cmap="RdYlGn", vmin=-vmax, vmax=vmax, aspect="auto")
            for r in g.itertuples():
                i, j = laws.index(r.error_law), mits.index(r.mitigation)
                v = r.verdict if pi == 0 else r.alarm_verdict
                txt = f"{SHORT.get(v, v)}\n{getattr(r, col):.2f}"
                if pi == 1:
                    txt += f"\nproxy {r.alarm_proxy:.2g}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=6.5)
                if pi == 0 and not r.agrees:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
                elif pi == 0 and getattr(r, "agreement", "") == "undecided":
                    ax.add_patch(plt.Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, ec="0.45", lw=1, ls="--"))
            ax.set_xticks(range(len(mits)), mits, rotation=35, ha="right", fontsize=8)
            ax.set_yticks(range(len(laws)), laws, fontsize=8)
            ax.set_title(f"{opt}: utility gain {title}", fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(
        "Arena: error law x mitigation (red outline: measured verdict disagrees with the prediction; "
        "dashed: unresolved, cannot tell)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def arena_markdown(cells: pd.DataFrame, png: Path | None) -> str:
    lines = ["", "## Arena: error law x mitigation", ""]
    lines += [
        "Each cell labelled on its own (eval/goodhart.py label_points): CAT catastrophic, over over-optimized,",
        "impr improving, unres unresolved. Numbers: utility gain at gold's best knob | at the alarm's knob",
        "(the last point the gold-free alarm finds quiet before its first non-quiet one) and, in brackets,",
        "the proxy gain there. `alarm-stop` is the KL tilt stopped at its alarm's knob. `!`: the measured",
        "verdict (catastrophic or not) disagrees with the theory's prediction (docs/arena.md); `?`: the cell",
        "is unresolved, the data can neither confirm nor refute the prediction.",
        "",
        "```",
        matrix_text(cells),
        "```",
        "",
    ]
    if png is not None:
        lines += [f"![arena heat map]({png.name})", ""]
    lines += ["### Prediction against measurement", ""]
    heads = "| optimizer | error law | mitigation | measured | first at KL | predicted | why (theory) | best U (KL) | alarm U (KL) | regret U / nats |"
    lines += [heads, "|" + "---|" * 10]
    for r in cells.itertuples():
        mark = {"disagrees": " **(disagrees)**", "undecided": " (cannot tell)"}.get(r.agreement, "")
        lines.append(
            f"| {r.optimizer} | {r.error_law} | {r.mitigation} | {r.verdict}{mark} | {r.verdict_kl:.3g} | {r.predicted} | "
            f"{r.predicted_why} | {r.best_utility:.3f} ({r.best_kl:.3g}) | {r.alarm_utility:.3f} ({r.alarm_kl:.3g}) | "
            f"{r.regret_utility:.3f} / {r.regret_nats:.3g} |"
        )
    chi = cells[cells["mitigation"] == "chi2"]
    if len(chi) and "share_linear" in chi:
        lines += [
            "",
            "### chi^2: the linear tilt's utility share against Var(V)/Var(U)",
            "",
            "Untruncated (no weight at 0) the chi^2 optimum is w = 1 + (r - mean r)/coef, so its utility share is",
            "Cov(V, U)/Var(U) on the pool exactly; `dropped` is the share of the pool the optimum ignores where",
            "the cell's worst verdict first appears.",
            "",
            "| error law | share, largest untruncated KL | Var(V)/Var(U) on the pool | verdict | first at KL | dropped there |",
            "|---|---|---|---|---|---|",
        ]
        for r in chi.itertuples():
            lines.append(
                f"| {r.error_law} | {r.share_untruncated:.3g} | {r.share_linear:.3g} | {r.verdict} | "
                f"{r.verdict_kl:.3g} | {r.verdict_dropped:.0%} |"
            )
    bad = cells[cells["agreement"] == "disagrees"]
    open_ = cells[cells["agreement"] == "undecided"]
    lines += [
        "",
        f"Measurement and prediction agree in {int((cells['agreement'] == 'agrees').sum())} of {len(cells)} cells, "
        f"disagree in {len(bad)}; {len(open_)} are unresolved" + (":" if len(open_) else "."),
        "",
    ]
    for r in open_.itertuples():
        lines.append(
            f"- {r.optimizer} / {r.error_law} / {r.mitigation}: unresolved from KL {r.verdict_kl:.3g}, "
            f"{unresolved_reason(r)}. Predicted {r.predicted}."
        )
    lines += ["", f"Disagreements: {len(bad)}" + (":" if len(bad) else "."), ""]
    for r in bad.itertuples():
        extra = ""
        if r.mitigation == "chi2" and r.verdict == "catastrophic":
            extra = f"; at that point the optimum gives weight 0 to {r.verdict_dropped:.0%} of the pool"
            if np.isfinite(getattr(r, "share_untruncated", np.nan)):
                extra += (
                    f", while untruncated its utility share was {r.share_untruncated:.3g} "
                    f"(Var(V)/Var(U) on the pool {r.share_linear:.3g})"
                )
        lines.append(
            f"- {r.optimizer} / {r.error_law} / {r.mitigation}: measured {r.verdict} (from KL {r.verdict_kl:.3g}, "
            f"max KL {r.max_kl:.3g}{extra}), predicted {r.predicted} ({r.predicted_why})."
        )
    return "\n".join(lines) + "\n"


def unresolved_reason(r: Any) -> str:
    """Why the verdict rule left a cell's worst point unresolved, in its own numbers."""
    why = str(getattr(r, "verdict_why", ""))
    u = f"utility gain {r.verdict_utility:.3g} [{r.verdict_utility_lo:.3g}, {r.verdict_utility_hi:.3g}] over {r.n_prompts:.0f} prompts"
    m = f"the near-base margin m = {r.near_base_margin:.3g}"
    mdd = f" (minimal detectable drop {r.verdict_mdd:.3g})" if np.isfinite(r.verdict_mdd) else ""
    if "cannot tell near base" in why or "spans 0" in why:
        need = r.prompts_for_near_base
        head = "past its peak, " if "cannot tell near base" in why else "never rose significantly, "
        txt = f"{head}{u} straddles {m} (utility share's upper bound {r.verdict_share_hi:.3g}, share0 {r.share0:.3g})"
        if np.isfinite(need):
            return txt + f"; at this estimate and spread about {need:,.0f} prompts would put it below m"
        return txt + "; its estimate is above m: more prompts would show it above base, not near it"
    if "no significant drop" in why:
        return f"a plateau past its peak: no significant drop{mdd}; {u}, above {m}"
    if "the data do not say which" in why:
        front = "best-of-2 on the base pool" if "best-of-2 on the base pool" in why else "the frontier"
        return f"improving along its own curve but more than m below {front} at its KL{mdd}: {u}"
    return f"{u} against {m}: {why[:160]}"


def arena_report(root: Path, rule: Any, out_dir: Path, prepare: Any = None) -> Arena | None:
    """The Arena section for a sweep with mitigated points, else None. prepare(root, df) -> df:
    what the report's own verdicts read beside results.csv (pipeline/report/verdicts.py backfill:
    best-of-2's gain on each pool, the rule's near-base floor), so a cell is labelled as the
    main verdicts label its points."""
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
    cells = arena_cells(root, df, rule)
    png = heatmap(cells, out_dir / "arena_heatmap.png")
    cells.to_csv(out_dir / "arena.csv", index=False)
    return Arena(cells, arena_markdown(cells, png), matrix_text(cells), [png, out_dir / "arena.csv"])
