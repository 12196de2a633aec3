"""The held-out estimate in a report (eval/holdout.py; docs/holdout.md): with a held-out proxy
present it is the headline -- the utility curve, peak and turn estimated without gold, its
assumption printed with it -- and the single-proxy alarm its companion. With gold beside it (a
synthetic proxy), how often the estimate said gold's label.

Imports: eval, io, sweeps.tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.holdout import ASSUMPTION, agreement, turn_text, turns
from goodhart.pipeline.sweeps.tables import alarm_text, ci_text, knob_text, render


def has_estimate(labelled: pd.DataFrame | None) -> bool:
    return labelled is not None and "est_verdict" in labelled and labelled["est_verdict"].notna().any()


def holdout_table(labelled: pd.DataFrame) -> str:
    """One row per point: the held-out gain and its estimated label first, gold's beside them
    when there is gold, the alarm last (its companion)."""
    gold = "verdict" in labelled and M.GAIN_UTILITY in labelled and labelled[M.GAIN_UTILITY].notna().any()
    rows = []
    for r in (row.to_dict() for _, row in labelled.iterrows()):
        if not isinstance(r.get("est_verdict"), str):
            continue
        rows.append(
            [
                r.get("curve", ""),
                r["algo"],
                knob_text(r),
                r[M.KL],
                ci_text(r, M.GAIN_PROXY),
                ci_text(r, M.GAIN_HOLDOUT),
                r["est_verdict"],
                *([ci_text(r, M.GAIN_UTILITY), r.get("verdict", "")] if gold else []),
                alarm_text(r),
            ]
        )
    heads = ["curve", "algo", "knob", "KL", "proxy gain [95% CI]", "held-out gain [95% CI]", "estimate"]
    heads += ["gold utility gain", "gold verdict"] if gold else []
    return render([*heads, "alarm (single proxy)"], rows)


def summary_lines(labelled: pd.DataFrame, est: pd.DataFrame) -> list[str]:
    """The assumption, where the estimate puts each optimizer's peak and turn (and gold's beside,
    when there is gold), and the agreement with gold's labels."""
    lines = [f"Assumption: {ASSUMPTION}."]
    sources = labelled[M.HOLDOUT_SOURCE].dropna().unique() if M.HOLDOUT_SOURCE in labelled else []
    if len(sources):
        lines.append("Held-out proxy: " + "; ".join(str(s) for s in sources) + ".")
    has_gold = M.GAIN_UTILITY in labelled and labelled[M.GAIN_UTILITY].notna().any() and "peak" in labelled
    gold_turns = turns(labelled) if has_gold else []
    for t in turns(est):
        s = "estimate " + turn_text(t)
        g = next((g for g in gold_turns if g.algo == t.algo and set(g.ids) & set(t.ids)), None)
        if g is not None:
            s += f"; gold: {turn_text(g).split(': ', 1)[1]}"
        lines.append(s)
    if has_gold and "est_verdict" in labelled:
        a = agreement(labelled["verdict"], labelled["est_verdict"])
        if a.points:
            lines.append(
                f"Against gold: the estimate said gold's label on {a.agree} of {a.resolved} points both resolved "
                f"({a.rate:.0%}); {a.est_unresolved} point(s) gold resolved are `est:unresolved` (more prompts "
                "or held-out members would resolve them)."
            )
    return lines


def holdout_tails(root: Path, df: pd.DataFrame) -> list[dict[str, Any]]:
    """The gold-free test of the optimized proxy's error tail, once per base pool: tail verdict of
    proxy - holdout (eval/holdout.py error_tail; the utility cancels)."""
    from goodhart.eval.holdout import error_tail

    out: list[dict[str, Any]] = []
    if "holdout_file" not in df or "pool_file" not in df:
        return out
    pairs = df[["pool_file", "holdout_file"]].dropna().drop_duplicates()
    for pf, hf in pairs.itertuples(index=False):
        if not ((root / str(pf)).is_file() and (root / str(hf)).is_file()):
            continue
        g = df[(df["pool_file"] == pf) & (df["holdout_file"] == hf)]
        what = str(g["error_law"].iloc[0]) if "error_law" in g else str(pf)
        if M.HOLDOUT_SOURCE in g and isinstance(g[M.HOLDOUT_SOURCE].iloc[0], str):
            what += f" | held-out {g[M.HOLDOUT_SOURCE].iloc[0]}"
        proxy, ho = np.load(root / str(pf))["proxy"], np.load(root / str(hf))["holdout"]
        try:
            out.append({"what": what, "report": error_tail(proxy, ho)})
        except ValueError as e:  # too few base samples for the tail estimators
            out.append({"what": what, "skipped": str(e)})
    return out


def tails_lines(tails: list[dict[str, Any]]) -> list[str]:
    out = []
    for t in tails:
        if "skipped" in t:
            out.append(f"- {t['what']}: not tested ({t['skipped']})")
        else:
            out.append(f"- {t['what']}: proxy - holdout is **{t['report'].verdict}**")
    return out


def holdout_markdown(labelled: pd.DataFrame, est: pd.DataFrame, tails: list[dict[str, Any]]) -> list[str]:
    """The report.md section, placed first (the headline without gold)."""
    lines = ["## Held-out estimate (no gold)", ""]
    lines += [
        "A second proxy, never optimized, whose error is independent of the optimized one's, reads the utility "
        "gain of every point: gold's verdict rule on that gain gives the `est:` labels (docs/holdout.md).",
        "",
    ]
    lines += [f"- {s}" for s in summary_lines(labelled, est)]
    lines += ["", "```", holdout_table(labelled), "```", ""]
    if tails:
        lines += [
            "The optimized proxy's error tail, without gold: proxy - holdout = X1 - X2 carries no utility; its "
            "upper tail is X1's (or the held-out error's lower tail). Heavy here means the gain can be bought in "
            "a heavy error tail whatever the utility's law.",
            "",
            *tails_lines(tails),
            "",
        ]
    return lines


def holdout_text(labelled: pd.DataFrame, est: pd.DataFrame) -> str:
    """The terminal's version: the table and the summary lines."""
    return (
        "held-out estimate (no gold; docs/holdout.md):\n"
        + holdout_table(labelled)
        + "\n"
        + "\n".join(summary_lines(labelled, est))
    )
