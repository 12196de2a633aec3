"""`goodhart holdout-bench`: the held-out estimate on its dev and test families, against exact truth.

The families are two sweep files: configs/sweep/holdout_dev.yaml (the held-out proxy's defaults,
eval.holdout.k and combine, were chosen there and only there) and configs/sweep/holdout_test.yaml
(other laws, scales, pool sizes and prompt counts; read once per rule version, each reading
recorded in docs/holdout.md). Each branch of a file is a family. The bench runs the sweep (points
already finished are reused, as any sweep's) and scores every family with holdout_eval.score;
the headline is the worst family, not the pooled figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import VerdictRule
from goodhart.pipeline.report.holdout_eval import HoldoutScore, score_rows

HALVES = {"dev": "holdout_dev.yaml", "test": "holdout_test.yaml"}


@dataclass
class FamilyScore:
    family: str
    score: HoldoutScore


def sweep_file(half: str) -> Path:
    from goodhart.pipeline.config.load import configs_dir

    return configs_dir() / "sweep" / HALVES[half]


def run_half(
    half: str, out: Path, overrides: list[str] | None = None, progress: bool = True, file: Path | None = None
) -> tuple[Path, dict[str, str]]:
    """Run the half's sweep under out/<sweep name> (finished points reused); returns its directory
    and each point's family (its branch; a tilt branch and its `-bon` branch are one family)."""
    from goodhart.pipeline.sweeps.invoke import run_sweep
    from goodhart.pipeline.sweeps.spec import branch_label, expand, expand_selected, load_sweep

    f = file or sweep_file(half)
    sweep, base = load_sweep(f)
    points = expand(sweep, base, overrides or [])
    family = {}
    for i, b in enumerate(sweep.branches):
        name = branch_label(b, i)
        for p in expand_selected(sweep, base, overrides or [], None, [name]).points:
            family[p.id] = name.removesuffix("-bon")
    root = out / sweep.name
    outcome = run_sweep(sweep, points, root, 1, progress, f)
    if not outcome.ok:
        raise RuntimeError(
            f"holdout-bench: {len(outcome.failed)} point(s) of {f.name} failed; see `goodhart status {root}`"
        )
    return root, family


def families(root: Path, family: dict[str, str] | None = None, rule: VerdictRule = VerdictRule()) -> list[FamilyScore]:
    """One score per family (`family`: point id -> name; none: one family per curve), and 'all' last."""
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.report.verdicts import finished_points

    df, units = finished_points(root)
    cfgs = {p: load_config(root / "points" / str(p) / "config.yaml") for p in df["point_id"]}
    if family is not None:
        df["family"] = [family.get(str(p), "?") for p in df["point_id"]]
    else:
        df["family"] = df[M.CURVE_PROXY].astype(str) if M.CURVE_PROXY in df else df["error_law"].astype(str)
    out = []
    for fam, g in df.groupby("family", sort=False):
        out.append(FamilyScore(str(fam), score_rows(g, [cfgs[p] for p in g["point_id"]], units, rule)))
    out.append(FamilyScore("all", score_rows(df, [cfgs[p] for p in df["point_id"]], units, rule)))
    return out


def table(scores: list[FamilyScore]) -> str:
    from goodhart.pipeline.sweeps.tables import render

    rows = []
    for f in scores:
        s, a = f.score, f.score.agreement
        rows.append(
            [
                f.family,
                a.points,
                f"{a.agree}/{a.resolved}",
                a.rate,
                a.est_unresolved,
                f"{s.peaks}/{s.curves}",
                s.peaks / s.curves if s.curves else float("nan"),
                f"{s.heavy_utility_over}/{s.heavy_utility_points}",
                s.coverage,
                s.gold_coverage,
            ]
        )
    heads = [
        "family",
        "points",
        "agree/resolved",
        "agreement",
        "est:unresolved (exact resolved)",
        "peaks within 1 knob",
        "peak rate",
        "heavy utility est:over",
        "held-out coverage",
        "gold coverage",
    ]
    return render(heads, rows, align_left=[0])


def worst(scores: list[FamilyScore]) -> str:
    """The headline: the worst family's agreement and peak rate (not the pooled figure)."""
    fams = [f for f in scores if f.family != "all"]
    if not fams:
        return "no family scored"
    a = min(fams, key=lambda f: (f.score.agreement.rate, f.family))
    p = min(fams, key=lambda f: (f.score.peaks / f.score.curves if f.score.curves else 1.0, f.family))
    heavy = sum(f.score.heavy_utility_over for f in fams)
    return (
        f"worst family: agreement {a.score.agreement.rate:.1%} ({a.family}); peaks within one knob "
        f"{p.score.peaks}/{p.score.curves} ({p.family}); heavy utility estimated over-optimized: {heavy}"
    )


def points_frame(scores: list[FamilyScore]) -> pd.DataFrame:
    """Every scored point with its family (for --csv)."""
    return pd.concat([f.score.points.assign(family=f.family) for f in scores if f.family != "all"], ignore_index=True)
