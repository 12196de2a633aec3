"""Plain-text tables for the terminal: one per error law, the KL axis down the rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from goodhart.eval import metrics as M
from goodhart.pipeline.base.measure import ci_text, number_text
from goodhart.pipeline.sweeps.labels import knob_label

__all__ = ["ci_text", "render", "sweep_tables"]  # ci_text, number_text: one home, base/measure.py


def render(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None, align_left: Sequence[int] = ()
) -> str:
    """Columns right-aligned, except those in align_left (long text reads better left-aligned)."""
    cells = [[number_text(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def cell(i: int, c: str, w: int) -> str:
        return c.ljust(w) if i in align_left else c.rjust(w)

    line = "  ".join(cell(i, h, w) for i, (h, w) in enumerate(zip(headers, widths))).rstrip()
    out = [title] if title else []
    out += [line, "-" * len(line)]
    out += ["  ".join(cell(i, c, w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in cells]
    return "\n".join(out)


def sweep_tables(df) -> str:
    """One table per curve (utility and proxy named; older results: per error law): algo, kl.coef
    or n, KL, proxy gain and utility gain with intervals, and trust flags; with a held-out proxy
    (eval.holdout) its gain, the utility gain estimated without gold, before the alarm."""
    if df.empty or "error_law" not in df:
        return "(no finished points)"
    done = df[df["status"] == "done"]
    keys = [M.CURVE_UTILITY, M.CURVE_PROXY] if all(k in done for k in M.CURVE_KEYS) else ["error_law"]
    blocks = []
    for key, g in done.groupby(keys, sort=False, dropna=False):
        g = g.sort_values(["algo", M.KL])
        held = M.GAIN_HOLDOUT in g and g[M.GAIN_HOLDOUT].notna().any()  # eval.holdout: the estimate beside gold
        rows = []
        for _, r in g.iterrows():
            r = r.to_dict()
            flag = "".join(" " + f for f in point_flags(r))
            rows.append(
                [
                    r["algo"],
                    knob_text(r),
                    r[M.KL],
                    ci_text(r, M.GAIN_PROXY),
                    ci_text(r, M.GAIN_UTILITY) + flag,
                    *([ci_text(r, M.GAIN_HOLDOUT)] if held else []),
                    alarm_text(r),
                ]
            )
        corr = g[M.ERROR_UTILITY_CORR].iloc[0] if M.ERROR_UTILITY_CORR in g else float("nan")
        name = f"utility {key[0]} | proxy {key[1]}" if len(keys) == 2 else f"error: {key[0]}"
        title = f"\n{name}   (base utility {number_text(float(g[M.BASE_UTILITY].iloc[0]))}, corr(error, utility) under base {number_text(float(corr))})"
        heads = ["algo", "knob", "KL", "proxy gain [95% CI]", "utility gain [95% CI]"]
        heads += ["held-out gain (no gold)"] if held else []
        heads += ["alarm (no gold)"]
        blocks.append(render(heads, rows, title))
    n_fail = int((df["status"] == "failed").sum())
    tail = f"\n{n_fail} point(s) failed: see `goodhart status`" if n_fail else ""
    if M.GAIN_HOLDOUT in done and done[M.GAIN_HOLDOUT].notna().any():  # the estimate's assumption, where it prints
        from goodhart.eval.holdout import ASSUMPTION

        tail += f"\n{ASSUMPTION} (docs/holdout.md)"
    if M.ALARM_LEVEL in done and done[M.ALARM_LEVEL].notna().any():  # what the alarm says, and assumes
        from goodhart.eval.alarm import MEANING

        tail = f"\n\n{MEANING}" + tail
    return "\n".join(blocks) + tail


def point_flags(r: dict) -> list[str]:
    """Trust flags of a result row: `low-ESS`, `pool-dependent` (tilt points), `n>N/4` (best-of-n
    from a pool under 4n per prompt: each prompt's estimate rests on a few draws)."""
    out = []
    if not (r.get(M.TILT_ESS_OK, True) in (True, "True", 1) or _isnan(r.get(M.TILT_ESS_OK))):
        out.append("low-ESS")
    if r.get(M.POOL_DEPENDENT) in (True, "True", 1):
        out.append("pool-dependent")
    n, pool = r.get(M.BON_N), r.get(M.N_SAMPLES)
    if r.get("algo") == "bon" and isinstance(n, (int, float)) and isinstance(pool, (int, float)) and 4 * n > pool:
        out.append("n>N/4")
    return out


def knob_text(r: dict) -> str:
    """`kl.coef=0.5`, `n=64`: the knob as the config spells it, as in the MLflow run names."""
    return knob_label(str(r["x_name"]), float(r["x"]))


def alarm_text(r: dict) -> str:
    """The gold-free alarm's level and score (eval/alarm.py), '-' for rows without one."""
    level, score = r.get(M.ALARM_LEVEL), r.get(M.ALARM_SCORE)
    if not isinstance(level, str) or not level:
        return "-"
    if not isinstance(score, (int, float)) or math.isnan(score):
        return level
    return f"{level} {score:.2f}" if abs(score) < 100 else f"{level} {score:.3g}"


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)
