"""`goodhart report SWEEP`: verdicts, fits, tail diagnostics, plots and a markdown report for
a sweep directory (or the sweep behind an MLflow experiment), also logged to the sweep's
parent MLflow run so the UI shows the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import GroupVerdict, VerdictRule, label_points, summarize_groups, sweep_verdict
from goodhart.pipeline.io import atomic_write_text, read_json
from goodhart.pipeline.sweeps.tables import ci_text, knob_text, render

FIT_KIND = {"bon": "bon"}  # every other optimizer is fitted with the RL form


@dataclass
class Report:
    root: Path
    labelled: pd.DataFrame
    groups: list[GroupVerdict]
    verdict: str
    fits: list[dict[str, Any]] = field(default_factory=list)
    tails: list[dict[str, Any]] = field(default_factory=list)
    learned: list[dict[str, Any]] = field(default_factory=list)  # learned-reward section (learned_report.py)
    files: list[Path] = field(default_factory=list)
    markdown: str = ""


def locate_sweep(arg: str) -> Path:
    """A sweep directory as given, or the directory recorded on an MLflow experiment's latest parent run."""
    p = Path(arg)
    if (p / "points.json").is_file():
        return p
    from goodhart.pipeline.sweeps.tracking import Tracker, resolve_uri

    tracker = Tracker(resolve_uri())
    exp = tracker.client.get_experiment_by_name(arg)
    if exp is None:
        raise FileNotFoundError(
            f"'{arg}' is neither a sweep directory (no points.json) nor an MLflow experiment in {tracker.uri}"
        )
    runs = tracker.client.search_runs(
        [exp.experiment_id], "tags.goodhart.sweep_dir != ''", order_by=["attributes.start_time DESC"], max_results=20
    )
    for r in runs:
        d = Path(r.data.tags.get("goodhart.sweep_dir", ""))
        if (d / "points.json").is_file():
            return d
    raise FileNotFoundError(f"MLflow experiment '{arg}' records no sweep directory that exists on this machine")


def verdict_table(labelled: pd.DataFrame) -> str:
    rows = [
        [
            r["error_law"],
            r["algo"],
            knob_text(r),
            r[M.KL],
            ci_text(r, M.GAIN_PROXY),
            ci_text(r, M.GAIN_UTILITY),
            r["verdict"],
        ]
        for r in (row.to_dict() for _, row in labelled.iterrows())
    ]
    return render(["error", "algo", "knob", "KL", "proxy gain [95% CI]", "utility gain [95% CI]", "verdict"], rows)


def _fits(labelled: pd.DataFrame) -> list[dict[str, Any]]:
    from goodhart.eval.fits import fit_bon, fit_rl

    out = []
    for (law, algo), g in labelled.groupby(["error_law", "algo"], sort=False):
        g = g[g[M.KL] > 0]
        kind = FIT_KIND.get(str(algo), "rl")
        fit = (fit_bon if kind == "bon" else fit_rl)(g[M.KL].to_numpy(float), g[M.GAIN_UTILITY].to_numpy(float))
        out.append({"error_law": law, "algo": algo, "form": kind, "fit": fit})
    return out


def _tails(root: Path, labelled: pd.DataFrame) -> list[dict[str, Any]]:
    from goodhart.eval.tails import tail_verdict

    out = []
    if "pool_file" not in labelled:
        return out
    for law, g in labelled.groupby("error_law", sort=False):
        files = [f for f in g["pool_file"].dropna().unique() if (root / str(f)).is_file()]
        if not files:
            continue
        z = np.load(root / str(files[0]))
        out.append(
            {"error_law": law, "error": tail_verdict(z["error"].ravel()), "proxy": tail_verdict(z["proxy"].ravel())}
        )
    return out


def build_report(root: Path, rule: VerdictRule = VerdictRule(), out_dir: Path | None = None) -> Report:
    from goodhart.eval.plots import bon_vs_n, gains_vs_kl

    df = pd.read_csv(root / "results.csv")
    labelled = label_points(df, rule)
    if labelled.empty:
        raise FileNotFoundError(f"{root} has no finished points yet (see `goodhart status {root}`)")
    groups = summarize_groups(labelled)
    rep = Report(root, labelled, groups, sweep_verdict(groups))
    out_dir = out_dir or root / "report"
    rep.files.append(gains_vs_kl(labelled, out_dir / "gains_vs_kl.png", f"sweep {root.name}"))
    b = bon_vs_n(labelled, out_dir / "bon_vs_n.png")
    if b is not None:
        rep.files.append(b)
    rep.fits = _fits(labelled)
    rep.tails = _tails(root, labelled)
    if rep.tails:
        from goodhart.eval.plots_tails import tail_plots

        for t in rep.tails:
            z = np.load(root / str(labelled[labelled["error_law"] == t["error_law"]]["pool_file"].dropna().iloc[0]))
            safe = M.sanitize(str(t["error_law"])).replace(" ", "_").replace("/", "_")
            rep.files.append(
                tail_plots(
                    z["error"].ravel(), out_dir / f"tails_{safe}.png", f"error {t['error_law']} under the base policy"
                )
            )
    from goodhart.pipeline.sweeps.learned_report import learned_error

    rep.learned = learned_error(root, labelled)
    labelled.to_csv(out_dir / "verdicts.csv", index=False)
    rep.files.append(out_dir / "verdicts.csv")
    rep.markdown = render_markdown(rep, out_dir)
    atomic_write_text(out_dir / "report.md", rep.markdown)
    rep.files.append(out_dir / "report.md")
    return rep


def render_markdown(rep: Report, out_dir: Path) -> str:
    lines = [f"# Sweep `{rep.root.name}`: verdict **{rep.verdict}**", ""]
    lines += ["## Verdicts", "", *[f"- {g.summary}" for g in rep.groups], ""]
    lines += [
        "Labels: `baseline` (proxy not moved), `improving`, `over-optimized` (utility fell from its peak),",
        "`catastrophic` (proxy up, utility gain back at the base level); the rule is in `eval/goodhart.py`.",
        "",
    ]
    lines += ["```", verdict_table(rep.labelled), "```", ""]
    lines += [
        f"![gains against KL]({p.name})"
        for p in rep.files
        if p.suffix == ".png" and p.name.startswith(("gains", "bon"))
    ]
    if rep.fits:
        lines += [
            "",
            "## Gao et al. fits of utility gain in d = sqrt(KL)",
            "",
            "best-of-n: R(d) = d (alpha - beta d); RL and tilt: R(d) = d (alpha - beta ln d).",
            "",
            "```",
        ]
        lines += [f"{f['error_law']} / {f['algo']} ({f['form']}): {f['fit']}" for f in rep.fits]
        lines += ["```"]
    if rep.tails:
        lines += ["", "## Tails under the base policy", ""]
        for t in rep.tails:
            lines += [f"### error {t['error_law']}: **{t['error'].verdict}**", "", "```", t["error"].table(), "```", ""]
        lines += [f"![tails]({p.name})" for p in rep.files if p.name.startswith("tails_")]
    from goodhart.pipeline.sweeps.learned_report import learned_error_markdown

    lines += learned_error_markdown(rep.learned)
    return "\n".join(lines) + "\n"


def log_to_mlflow(rep: Report) -> str | None:
    """Attach plots, report and verdict table to the sweep's latest parent run; returns its id."""
    parent = rep.root / "parent.json"
    if not parent.is_file():
        return None
    from goodhart.pipeline.sweeps.tracking import Tracker

    info = read_json(parent)
    tr = Tracker(info["uri"])
    run_id = info["run_id"]
    for f in rep.files:
        tr.log_artifact(run_id, f, "report")
    cols = [
        "error_law",
        "algo",
        "x_name",
        "x",
        M.KL,
        M.GAIN_PROXY,
        M.GAIN_UTILITY,
        M.lo(M.GAIN_UTILITY),
        M.hi(M.GAIN_UTILITY),
        "verdict",
    ]
    tr.log_table(run_id, rep.labelled[[c for c in cols if c in rep.labelled]].reset_index(drop=True), "verdicts.json")
    tags = {"goodhart.verdict": rep.verdict}
    for g in rep.groups:
        key = M.sanitize(f"goodhart.verdict.{g.error_law}.{g.algo}").replace(" ", "_")
        tags[key] = "catastrophic" if g.catastrophic_kl is not None else "no-catastrophe"
    tr.set_tags(run_id, tags)
    return run_id
