"""The gold-free alarm (eval/alarm.py) beside the gold verdict, for tables and reports.

Kept apart from report.py so the verdict logic there can change without touching this."""

from __future__ import annotations

import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.alarm import MEANING
from goodhart.pipeline.sweeps.tables import alarm_text, knob_text, render


def alarm_table(labelled: pd.DataFrame) -> str:
    """One row per point: gold verdict (if any) and the alarm's level with its evidence; below it,
    what the level means and what it assumes (eval.alarm.MEANING)."""
    if M.ALARM_LEVEL not in labelled:
        return "(no alarm in these results: they predate eval/alarm.py)"
    rows = []
    for _, row in labelled.iterrows():
        r = row.to_dict()
        rows.append(
            [
                r.get("error_law", ""),
                r.get("algo", ""),
                knob_text(r),
                r[M.KL],
                r.get("verdict", "-") or "-",
                alarm_text(r),
                r.get(M.ALARM_LOCAL_P, float("nan")),
                r.get(M.ALARM_TAIL_SHARE, float("nan")),
                r.get(M.ALARM_DEPTH, float("nan")),
                r.get(M.ALARM_P, float("nan")),
                r.get(M.ALARM_TAIL_P, float("nan")),
                r.get(M.ALARM_DV_RATIO, float("nan")),
            ]
        )
    heads = [
        "error",
        "algo",
        "knob",
        "KL",
        "gold verdict",
        "alarm (no gold)",
        "p (local)",
        "tail share",
        "depth",
        "p (gain test)",
        "p (tail shape)",
        "gain/DV bound",
    ]
    return render(heads, rows) + "\n\n" + MEANING  # what it says and assumes, wherever it prints


def alarm_markdown(labelled: pd.DataFrame) -> list[str]:
    """A report section: the table, and how often the alarm's level met each gold verdict."""
    if M.ALARM_LEVEL not in labelled:
        return []
    lines = [
        "",
        "## Goodhart alarm (no gold)",
        "",
        "Computed from proxy rewards, the KL and the base pool's proxy only (`eval/alarm.py`, docs/alarm.md): "
        "`p (local)` is the local tail test's p-value -- is the base pool's tail heavier than exponential where "
        "this point buys its gain? (`alarm` needs it below alpha and `tail share`, the share of the gain carried "
        "beyond the bulk's 0.9 quantile, >= 0.8); `depth` the share of the pool above the median of where the gain "
        "is bought. The curve-level tests say `watch` at most: `p (gain test)`, the proxy gain against the "
        "same optimizer on the base pool with its tail beyond the 0.9 quantile redrawn from an exponential of "
        "the bulk's scale, and `p (tail shape)`, the pool's mean-excess slope (one number per pool). Gold "
        "verdicts beside it are only for checking the alarm.",
        "",
        "```",
        alarm_table(labelled),
        "```",
    ]
    if "verdict" in labelled and labelled["verdict"].astype(bool).any():
        ct = pd.crosstab(labelled["verdict"], labelled[M.ALARM_LEVEL])
        lines += ["", "Points by gold verdict (rows) and alarm level (columns):", "", "```", ct.to_string(), "```"]
    return lines
