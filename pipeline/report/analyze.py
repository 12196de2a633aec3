"""`goodhart analyze SAMPLES`: a run's per-sample file through the same tables, verdicts, alarm,
tails and report.html as a sweep.

The file (schema: pipeline/report/samples.py, docs/integrations.md) becomes a directory shaped
like a finished sweep's -- results.csv, points/<id>/per_prompt.npz, pools/<hash>.npz -- and the
sweep report (report/verdicts.py: build_report) reads it, so nothing of the reading is written
twice. Without a utility column there is no gold: the alarm and the base proxy's tails only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule
from goodhart.eval.goodhart import VerdictRule
from goodhart.pipeline.io import atomic_savez, atomic_write, atomic_write_text
from goodhart.pipeline.report.samples import BASE_ID, Analysis, build, read_samples

TAILS_MIN = 500  # eval.tails.tail_verdict's minimum sample


@dataclass
class AnalyzeResult:
    """What `analyze` made: the sweep-shaped directory, and the report when there is gold."""

    out_dir: Path
    results: pd.DataFrame
    labelled: pd.DataFrame | None = None
    """The verdict table (without a utility column: the held-out estimate's, or None without one)."""
    report: Any = None
    """The sweep report (report/verdicts.py: Report), None without gold."""
    estimate: pd.DataFrame | None = None
    """The held-out estimate's labelled table (eval/holdout.py; None without holdout columns)."""
    tails: dict[str, Any] = field(default_factory=dict)
    """curve -> tail report of the base policy's proxy (eval.tails), or a line why not."""
    notes: list[str] = field(default_factory=list)


def write_sweep_shaped(ana: Analysis, root: Path) -> None:
    """results.csv, points/<id>/per_prompt.npz, pools/*.npz: what the sweep report reads."""
    root.mkdir(parents=True, exist_ok=True)
    for pid, arrays in ana.per_prompt.items():
        atomic_savez(root / "points" / pid / "per_prompt.npz", **arrays)
    if ana.has_utility or M.GAIN_HOLDOUT in ana.results:  # the pools gold's tails or the held-out tail test read
        for rel, arrays in ana.pools.items():
            atomic_savez(root / rel, **arrays)
    atomic_write(root / "results.csv", lambda p: ana.results.to_csv(p, index=False))


def analyze(
    samples: str | Path | pd.DataFrame,
    out_dir: str | Path | None = None,
    rule: VerdictRule = VerdictRule(),
    base_id: str = BASE_ID,
    pairing: str = "prompt",
    alarm_rule: AlarmRule | None = None,
    holdout_combine: str = "mean",
) -> AnalyzeResult:
    """Analyze a per-sample file (or an already read table) into `out_dir` (default: beside the
    file, <stem>_analysis/); `alarm_rule`: the alarm's rule (None: the default AlarmRule; the one a
    run or callback used, to read its samples as it read them). With holdout columns (a held-out
    proxy, docs/holdout.md) the utility gain is also estimated without gold; without a utility
    column that estimate is the report."""
    from goodhart.pipeline.report.samples import check

    if isinstance(samples, pd.DataFrame):
        df, name = check(samples, "samples", base_id), "samples"
        root = Path(out_dir) if out_dir is not None else Path("samples_analysis")
    else:
        p = Path(samples)
        df, name = read_samples(p, base_id), str(p)
        root = Path(out_dir) if out_dir is not None else p.parent / f"{p.stem}_analysis"
    ana = build(df, name, base_id, rule.ci, pairing, alarm_rule, holdout_combine)
    if pairing == "global":
        ana.notes.append("gains against the base's overall mean (--pairing global): not paired per prompt")
    write_sweep_shaped(ana, root)
    res = AnalyzeResult(root, ana.results, notes=list(ana.notes))
    from goodhart.eval.tails import tail_verdict

    for curve, x in ana.base_proxy.items():
        if x.size < TAILS_MIN or np.unique(x).size < 20:
            res.tails[curve] = f"{x.size} base samples ({np.unique(x).size} distinct): tails need >= {TAILS_MIN}"
            continue
        try:
            res.tails[curve] = tail_verdict(x)
        except ValueError as e:
            res.tails[curve] = str(e)
    if ana.has_utility:
        from goodhart.pipeline.report.verdicts import build_report

        rep = build_report(root, rule, root / "report")
        res.report, res.labelled = rep, rep.labelled
    else:
        lines = ["# Samples: without gold", ""]
        if M.GAIN_HOLDOUT in ana.results:  # a held-out proxy: its estimate is the headline, the alarm its companion
            lines += _estimate(res, root, rule)
        else:
            res.notes.append("no utility column: no gold, so no verdicts; the alarm and the base proxy's tails only")
        from goodhart.pipeline.report.alarm_tables import alarm_table

        lines += ["## The single-proxy alarm", "", "```", alarm_table(ana.results), "```", ""]
        for curve, t in res.tails.items():
            lines += [f"## base proxy of {curve}: tails", "", "```", t if isinstance(t, str) else t.table(), "```", ""]
        atomic_write_text(root / "report" / "report.md", "\n".join(lines))
    return res


def _estimate(res: AnalyzeResult, root: Path, rule: VerdictRule) -> list[str]:
    """No gold, a held-out proxy: the estimated labels (eval/holdout.py) and their report section."""
    from goodhart.eval.holdout import EST_COLUMNS, estimated_labels
    from goodhart.pipeline.report.holdout import holdout_markdown, holdout_tails
    from goodhart.pipeline.report.units import load_units

    est = estimated_labels(res.results, rule, load_units(root, res.results))
    shown = est.rename(columns=EST_COLUMNS).assign(curve=lambda d: d["est_curve"])
    res.estimate, res.labelled = est, shown
    res.notes.append("no utility column: no gold; the held-out proxy's estimate (est: labels) and the alarm")
    return holdout_markdown(shown, est, holdout_tails(root, res.results))


def alarm_summary(results: pd.DataFrame) -> str:
    """Alarm levels by point, for the terminal when there is no gold."""
    from goodhart.pipeline.report.alarm_tables import alarm_table

    return alarm_table(results) if M.ALARM_LEVEL in results else "(no alarm)"
