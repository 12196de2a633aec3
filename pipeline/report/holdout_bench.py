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
from goodhart.pipeline.report.holdout_eval import HoldoutScore, scipy_law, score_rows

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


# ---------------------------------------------------------------------------------------------
# Coverage of the held-out interval over many pools (how the default k was chosen)
# ---------------------------------------------------------------------------------------------
COVERAGE_LAWS = ("gaussian", "student_t(df=3)", "lognormal(sigma=1)", "pareto(alpha=2)", "levy")
"""The dev families' error laws (held-out errors of the same law), beside a N(0, 1) utility."""
COVERAGE_SETTINGS = ((1, "median"), (3, "median"), (5, "median"), (9, "median"), (5, "mean"))


def coverage(
    seeds: int = 40,
    prompts: int = 16,
    pool: int = 2048,
    ns: tuple[int, ...] = (2, 8, 64, 512),
    laws: tuple[str, ...] = COVERAGE_LAWS,
    settings: tuple[tuple[int, str], ...] = COVERAGE_SETTINGS,
    exact_nodes: int = 1000,
) -> pd.DataFrame:
    """How often the held-out 95% t interval over prompts holds the exact best-of-n gain, and its
    mean width, over `seeds` pools per law, for each (k, combine): one row per (law, k, combine, n).
    exact_nodes: the quadrature's nodes (eval/exact.py bon_gain; fewer: faster, less exact)."""
    import numpy as np
    from scipy import stats

    from goodhart.eval.bon import best_of_n
    from goodhart.eval.bootstrap import t_ci
    from goodhart.eval.exact import bon_gain
    from goodhart.eval.holdout import combine
    from goodhart.pipeline.base.scoring import law
    from goodhart.pipeline.config.schema import LawConfig

    rows = []
    kmax = max(k for k, _ in settings)
    for name in laws:
        lc = LawConfig.model_validate(name)
        x = law(lc)
        exact = bon_gain(stats.norm(), scipy_law(lc), list(ns), m=exact_nodes)
        hits = np.zeros((len(settings), len(ns)))
        width = np.zeros((len(settings), len(ns)))
        for seed in range(seeds):
            rng = np.random.default_rng([seed, 2026])
            v = rng.normal(size=(prompts, pool))
            r1 = v + x.sample((prompts, pool), rng)
            draws = x.sample((kmax, prompts, pool), rng)
            r2 = [v + combine(draws[:k], how) for k, how in settings]
            for j, n in enumerate(ns):
                est = best_of_n(r1, n, **{f"h{i}": h for i, h in enumerate(r2)})
                for i, h in enumerate(r2):
                    _, lo, hi = t_ci(est[f"h{i}"] - h.mean(1))
                    hits[i, j] += lo <= exact[j] <= hi
                    width[i, j] += hi - lo
        for i, (k, how) in enumerate(settings):
            for j, n in enumerate(ns):
                rows.append(
                    {
                        "error": name,
                        "k": k,
                        "combine": how,
                        "n": n,
                        "exact": float(exact[j]),
                        "coverage": hits[i, j] / seeds,
                        "width": width[i, j] / seeds,
                    }
                )
    return pd.DataFrame(rows)
