"""What a labelled sweep says per curve and as a whole (eval/goodhart.py labels the points): each
curve's sentence and verdict (catastrophic, unresolved, no-catastrophe), the sweep's, and the
power analysis of its unresolved points."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.evidence import f as _f
from goodhart.eval.evidence import fmt as _g
from goodhart.eval.evidence import interval_text as _ci
from goodhart.eval.evidence import is_nan as _nan
from goodhart.eval.evidence import knob_text as _knob

LABELS = ("baseline", "improving", "over-optimized", "unresolved", "catastrophic")


def power_table(labelled: pd.DataFrame) -> pd.DataFrame:
    """The power analysis of a labelled sweep: every unresolved point (and every over-optimized one
    whose interval still reaches the near-base band), what the data could see (the minimal
    detectable drop) and what would resolve it (prompts at the pool size it has, 80% power)."""
    sel = labelled[(labelled["verdict"] == "unresolved") | labelled.get("open", False)]
    cols = ["curve", "algo", "x_name", "x", M.KL, "verdict", "mdd", "need", "need/units"]
    return sel[[c for c in cols if c in sel]].reset_index(drop=True)


def curve_name(r: pd.Series | dict) -> str:
    """`utility <- proxy` for a curve (or the error label of a table without curve columns)."""
    u = r.get(M.CURVE_UTILITY)
    if isinstance(u, str) and u:
        return f"utility {r[M.CURVE_UTILITY]} | proxy {r[M.CURVE_PROXY]}"
    return str(r.get("error_law", "?"))


@dataclass
class GroupVerdict:
    curve: str
    """Short id (c1, c2, ...) used in tables."""
    name: str
    """utility and proxy of the curve."""
    algos: str
    peak_kl: float
    peak_gain: float
    peak_lo: float
    peak_hi: float
    catastrophic_kl: float | None
    catastrophic_proxy: float | None
    catastrophic_utility: float | None
    counts: dict[str, int]
    summary: str
    open_points: int = 0
    """Unresolved points whose utility interval reaches the near-base band: they may be back at
    base (catastrophic) and the data cannot exclude it."""

    @property
    def verdict(self) -> str:
        """`catastrophic` (a point shown near base), `unresolved` (none shown, but some could be),
        or `no-catastrophe` (every point's interval excludes the near-base band, or it improves)."""
        if self.catastrophic_kl is not None:
            return "catastrophic"
        return "unresolved" if self.open_points else "no-catastrophe"


def summarize_groups(labelled: pd.DataFrame) -> list[GroupVerdict]:
    """One sentence per curve: where utility peaked (across optimizers, and along each one's own
    curve) and where (if anywhere) it went catastrophic."""
    out = []
    for cid, g in labelled.groupby("curve", sort=False):
        g = g.sort_values(M.KL)
        name = curve_name(g.iloc[0])
        algos = ",".join(dict.fromkeys(str(a) for a in g["algo"]))
        col = "frontier_peak" if "frontier_peak" in g else "peak"
        pk = g[g[col].astype(bool)]
        peak = pk.iloc[0] if len(pk) else None
        cat = g[g["verdict"] == "catastrophic"]
        first = cat.iloc[0] if len(cat) else None
        counts = {k: int((g["verdict"] == k).sum()) for k in LABELS if (g["verdict"] == k).any()}
        head = f"{cid} ({algos}) {name}: "
        if peak is None:
            s = head + "the proxy never moved"
            pv = (float("nan"),) * 4
        else:
            pv = (
                _f(peak[M.KL]),
                _f(peak[M.GAIN_UTILITY]),
                _f(peak.get(M.lo(M.GAIN_UTILITY))),
                _f(peak.get(M.hi(M.GAIN_UTILITY))),
            )
            ci = _ci(pv[1], pv[2], pv[3])
            real = not _nan(pv[2]) and pv[2] > 0 or (_nan(pv[2]) and pv[1] > 0)
            if real:
                # the peak is the largest lower bound, not the largest estimate: say so, since
                # another optimizer's point can have a larger (less certain) estimate
                s = head + f"utility peaked (largest lower bound) at KL {_g(pv[0])} ({_knob(peak)}) with gain {ci}"
            else:
                s = (
                    head
                    + f"utility never rose distinguishably from the base level (best lower bound: gain {ci} at KL {_g(pv[0])})"
                )
            own = [
                f"{r['algo']} at KL {_g(_f(r[M.KL]))} ({_knob(r)}, {_ci(_f(r[M.GAIN_UTILITY]), _f(r.get(M.lo(M.GAIN_UTILITY))), _f(r.get(M.hi(M.GAIN_UTILITY))))})"
                for _, r in g[g["peak"].astype(bool)].iterrows()
            ]
            if len(own) > 1:
                s += "; own peaks: " + ", ".join(own)
        if "open" in g:  # label_curve's own reading: may be back at base, not excluded
            could = g[g["open"].astype(bool) & (g["verdict"] != "catastrophic")]
        else:
            margin = g["near_base_margin"].astype(float) if "near_base_margin" in g else pd.Series(0.0, index=g.index)
            lo = g[M.lo(M.GAIN_UTILITY)].astype(float) if M.lo(M.GAIN_UTILITY) in g else g[M.GAIN_UTILITY].astype(float)
            could = g[(g["verdict"] == "unresolved") & ~(lo > margin)]  # a NaN bound excludes nothing
        if first is not None:
            s += f"; CATASTROPHIC from KL {_g(_f(first[M.KL]))} ({_knob(first)}): {first['why']}"
        elif len(could):
            c0 = could.iloc[0]
            s += (
                f"; not shown back at base, but not excluded either: {len(could)} point(s) from KL "
                f"{_g(_f(c0[M.KL]))} ({_knob(c0)}) have utility intervals reaching the near-base band "
                f"(+-{_g(_f(c0.get('near_base_margin')))})"
            )
        elif "over-optimized" in counts:
            s += "; over-optimized past a peak, not shown back at base"
        else:
            s += "; no point shown back at base"
        s += " [" + ", ".join(f"{v} {k}" for k, v in counts.items()) + "]"
        out.append(
            GroupVerdict(
                str(cid),
                name,
                algos,
                *pv,
                None if first is None else _f(first[M.KL]),
                None if first is None else _f(first[M.GAIN_PROXY]),
                None if first is None else _f(first[M.GAIN_UTILITY]),
                counts,
                s,
                int(len(could)),
            )
        )
    return out


def sweep_verdict(groups: list[GroupVerdict]) -> str:
    """One value for the MLflow tag `goodhart.verdict`: `catastrophic` if any curve entered the
    regime; else `unresolved` if some curve has points that may be back at base (intervals too
    wide to exclude it: more prompts would decide); else `no-catastrophe`."""
    verdicts = {g.verdict for g in groups}
    for v in ("catastrophic", "unresolved"):
        if v in verdicts:
            return v
    return "no-catastrophe"
