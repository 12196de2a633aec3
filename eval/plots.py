"""Plots of a labelled sweep table (PNG, matplotlib Agg). Pure functions: table in, file out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M

COLORS = {
    "tilt": "#1f77b4",
    "bon": "#2ca02c",
    "ppo": "#d62728",
    "rloo": "#9467bd",
    "grpo": "#8c564b",
    "bon-ft": "#e377c2",
}
MARKS = {"catastrophic": ("X", "#d62728"), "over-optimized": ("v", "#ff7f0e")}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(ax, x, m, lo, hi, color, label, marker="o"):
    order = np.argsort(x)
    x, m, lo, hi = (np.asarray(a, float)[order] for a in (x, m, lo, hi))
    ax.plot(x, m, marker=marker, ms=3.5, lw=1.4, color=color, label=label)
    if np.isfinite(lo).any():
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)


def _symlog(ax, values) -> None:
    """Symlog for proxy gains (they span 1e-1..1e9 under heavy tails); no empty negative half."""
    ax.set_yscale("symlog", linthresh=1.0)
    lo = float(np.nanmin(values)) if len(values) else 0.0
    ax.set_ylim(bottom=min(lo * 1.2, -0.2))


def _mark(ax, g: pd.DataFrame, x: str, y: str) -> None:
    for verdict, (marker, color) in MARKS.items():
        s = g[g.get("verdict", "") == verdict]
        if len(s):
            ax.scatter(
                s[x], s[y], marker=marker, s=60, color=color, zorder=5, label=verdict, edgecolor="k", linewidth=0.4
            )


def gains_vs_kl(labelled: pd.DataFrame, out: Path, title: str = "") -> Path:
    """One column per error law; top row proxy gain (symlog), bottom row utility gain; x = KL."""
    plt = pyplot()
    laws = list(dict.fromkeys(labelled["error_law"]))
    fig, axes = plt.subplots(2, len(laws), figsize=(4.2 * len(laws), 6.4), squeeze=False, sharex="col")
    for j, law in enumerate(laws):
        sub = labelled[labelled["error_law"] == law]
        for algo, g in sub.groupby("algo", sort=False):
            c = COLORS.get(str(algo), None)
            _band(axes[0, j], g[M.KL], g[M.GAIN_PROXY], g[M.lo(M.GAIN_PROXY)], g[M.hi(M.GAIN_PROXY)], c, str(algo))
            _band(
                axes[1, j], g[M.KL], g[M.GAIN_UTILITY], g[M.lo(M.GAIN_UTILITY)], g[M.hi(M.GAIN_UTILITY)], c, str(algo)
            )
            _mark(axes[1, j], g, M.KL, M.GAIN_UTILITY)
        axes[0, j].set_title(f"error: {law}", fontsize=10)
        _symlog(axes[0, j], sub[M.GAIN_PROXY].to_numpy(float))
        axes[1, j].axhline(0, color="k", lw=0.6, ls=":")
        axes[1, j].set_xlabel("KL(pi || pi_0)  [nats]")
    axes[0, 0].set_ylabel("proxy gain (symlog)")
    axes[1, 0].set_ylabel("utility gain")
    _legend(fig, axes)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return save_figure(fig, out)


def bon_vs_n(labelled: pd.DataFrame, out: Path) -> Path | None:
    """Best-of-n: proxy and utility gain against n (log axis), one column per error law."""
    bon = labelled[labelled["algo"] == "bon"]
    if bon.empty:
        return None
    plt = pyplot()
    laws = list(dict.fromkeys(bon["error_law"]))
    fig, axes = plt.subplots(2, len(laws), figsize=(4.2 * len(laws), 6.0), squeeze=False, sharex=True)
    for j, law in enumerate(laws):
        g = bon[bon["error_law"] == law]
        _band(
            axes[0, j],
            g["x"],
            g[M.GAIN_PROXY],
            g[M.lo(M.GAIN_PROXY)],
            g[M.hi(M.GAIN_PROXY)],
            COLORS["bon"],
            "best-of-n",
        )
        _band(
            axes[1, j],
            g["x"],
            g[M.GAIN_UTILITY],
            g[M.lo(M.GAIN_UTILITY)],
            g[M.hi(M.GAIN_UTILITY)],
            COLORS["bon"],
            "best-of-n",
        )
        _mark(axes[1, j], g, "x", M.GAIN_UTILITY)
        axes[0, j].set_title(f"error: {law}", fontsize=10)
        _symlog(axes[0, j], g[M.GAIN_PROXY].to_numpy(float))
        axes[1, j].axhline(0, color="k", lw=0.6, ls=":")
        axes[1, j].set_xscale("log", base=2)
        axes[1, j].set_xlabel("n")
    axes[0, 0].set_ylabel("proxy gain (symlog)")
    axes[1, 0].set_ylabel("utility gain")
    _legend(fig, axes)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return save_figure(fig, out)


def _legend(fig, axes) -> None:
    handles = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(
        list(handles.values()), list(handles), loc="upper right", ncol=min(6, len(handles)), fontsize=8, frameon=False
    )


def save_figure(fig, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    pyplot().close(fig)
    return out
