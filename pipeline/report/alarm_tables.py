"""The gold-free alarm (eval/alarm.py) beside the gold verdict, for tables and reports.

Kept apart from report.py so the verdict logic there can change without touching this."""

from __future__ import annotations

import pandas as pd

from goodhart.eval import metrics as M
from goodhart.pipeline.sweeps.tables import alarm_text, knob_text, render


def alarm_table(labelled: pd.DataFrame) -> str:
    """One row per point: gold verdict (if any) and the alarm's level with its evidence."""
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
                r.get(M.ALARM_P, float("nan")),
                r.get(M.ALARM_TAIL_P, float("nan")),
                r.get(M.ALARM_TAIL_SHARE, float("nan")),
                r.get(M.ALARM_DV_RATIO, float("nan")),
                r.get(M.ALARM_ME_SLOPE, float("nan")),
            ]
        )
    heads = [
        "error",
        "algo",
        "knob",
        "KL",
        "gold verdict",
        "alarm (no gold)",
        "p (gain test)",
        "p (tail shape)",
        "tail share",
        "gain/DV bound",
        "mean-excess slope",
    ]
    return render(heads, rows)


def alarm_markdown(labelled: pd.DataFrame) -> list[str]:
    """A report section: the table, and how often the alarm's level met each gold verdict."""
    if M.ALARM_LEVEL not in labelled:
        return []
    lines = [
        "",
        "## Goodhart alarm (no gold)",
        "",
        "Computed from proxy rewards, the KL and the base pool's proxy only (`eval/alarm.py`, docs/alarm.md): "
        "`p (gain test)` is the p-value of the proxy gain under the light-tailed null (the same optimizer "
        "on the base pool with its tail beyond the 0.9 quantile redrawn from an exponential fitted to the "
        "bulk), `p (tail shape)` that of the base pool's mean-excess slope (the null is rejected when either "
        "is below alpha / 2); `tail share` the share of the gain carried by samples beyond the bulk's 0.9 "
        "quantile (`alarm` needs it >= 0.8); `gain/DV bound` the proxy gain over sigma_bulk sqrt(2 KL) "
        "(descriptive); `mean-excess slope` the base tail's kind (0 exponential, > 0 a power tail). Gold "
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
