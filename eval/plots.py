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
# unresolved: an open circle (the data cannot say whether it is back at base)
MARKS = {"catastrophic": ("X", "#d62728"), "over-optimized": ("v", "#ff7f0e"), "unresolved": ("o", "none")}


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
    """Symlog for proxy gains (they span 1e-1..1e9 under heavy tails); no empty negative half,
    and room above the largest value (the interval bars included when the caller passes them)."""
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(*_symlog_span(values))


def _with_bounds(g: pd.DataFrame, name: str) -> np.ndarray:
    """A gain's values and interval bounds, for limits that hold the bars too."""
    cols = [c for c in (name, M.lo(name), M.hi(name)) if c in g]
    return g[cols].to_numpy(float).ravel()


def _mark(ax, g: pd.DataFrame, x: str, y: str) -> None:
    for verdict, (marker, color) in MARKS.items():
        s = g[g.get("verdict", "") == verdict]
        if len(s):
            hollow = color == "none"
            ax.scatter(
                s[x],
                s[y],
                marker=marker,
                s=80 if hollow else 60,
                facecolors="none" if hollow else color,
                zorder=5,
                label=verdict,
                edgecolors="k",
                linewidth=1.0 if hollow else 0.4,
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
        _symlog(axes[0, j], _with_bounds(sub, M.GAIN_PROXY))
        axes[1, j].axhline(0, color="k", lw=0.6, ls=":")
        axes[1, j].set_xlabel("KL(pi || pi_0)  [nats]")
    axes[0, 0].set_ylabel("proxy gain (symlog)")
    axes[1, 0].set_ylabel("utility gain")
    _legend(fig, axes)
    fig.suptitle(title or "Proxy and utility gain against KL", fontsize=11, x=0.02, ha="left")
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
        _symlog(axes[0, j], _with_bounds(g, M.GAIN_PROXY))
        axes[1, j].axhline(0, color="k", lw=0.6, ls=":")
        axes[1, j].set_xscale("log", base=2)
        axes[1, j].set_xlabel("n")
    axes[0, 0].set_ylabel("proxy gain (symlog)")
    axes[1, 0].set_ylabel("utility gain")
    _legend(fig, axes)
    fig.suptitle("Best-of-n: proxy and utility gain against n", fontsize=11, x=0.02, ha="left")
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


# ---------------------------------------------------------------------------------------------
# The report's figures: pure functions, tables (and fits) in, a matplotlib Figure out.
# ---------------------------------------------------------------------------------------------
GAINS = ((M.GAIN_PROXY, "proxy gain"), (M.GAIN_UTILITY, "utility gain"))


def _errorbars(ax, x, m, lo, hi, color, label, marker="o") -> None:
    x, m, lo, hi = (np.asarray(a, float) for a in (x, m, lo, hi))
    ok = np.isfinite(lo) & np.isfinite(hi)
    yerr = np.vstack([np.where(ok, m - lo, 0.0), np.where(ok, hi - m, 0.0)])
    ax.errorbar(x, m, yerr=yerr, fmt=marker, ms=4, color=color, ecolor=color, elinewidth=0.8, capsize=2, label=label)


def drawable(fit) -> bool:
    """Whether a fit's curve may be drawn: enough points to over-determine its two coefficients
    (4 or more, the fit's own minimum for checking it) and a finite covariance. A curve through
    2 or 3 points says nothing the points do not."""
    return fit is not None and np.isfinite(fit.alpha) and fit.n_points >= 4 and bool(np.isfinite(fit.cov).all())


def gao_fit_panels(labelled: pd.DataFrame, fits: list[dict], sqrt_kl: bool = False, title: str = ""):
    """Gao et al.'s picture, one column per error law: proxy gain (top, symlog) and utility
    gain (bottom) against KL or sqrt(KL), the points with their intervals, each optimizer's
    fitted curve drawn over the KL range of its own points, and the fitted peak (d*, R(d*))
    starred when the fit is sound. A fit that the points cannot pin (fewer than 4, see
    `drawable`) is not drawn; a drawn but unsound one is dashed. `fits`: dicts with error_law,
    algo, metric (a gain name) and fit (an eval.fits.FitResult). Each panel has its own axes:
    best-of-n and tilt live at a few nats, trained policies at tens to hundreds."""
    plt = pyplot()
    laws = list(dict.fromkeys(labelled["error_law"]))
    fig, axes = plt.subplots(2, len(laws), figsize=(4.4 * len(laws), 7.0), squeeze=False)
    xfun = np.sqrt if sqrt_kl else (lambda v: np.asarray(v, float))
    by_key = {(f["error_law"], f["algo"], f.get("metric", M.GAIN_UTILITY)): f["fit"] for f in fits}
    for j, law in enumerate(laws):
        sub = labelled[labelled["error_law"] == law]
        for i, (gain, _) in enumerate(GAINS):
            ax = axes[i, j]
            for algo, g in sub.groupby("algo", sort=False):
                c = COLORS.get(str(algo))
                _errorbars(ax, xfun(g[M.KL]), g[gain], g[M.lo(gain)], g[M.hi(gain)], c, str(algo))
                fit = by_key.get((law, algo, gain))
                if not drawable(fit):
                    continue
                kl = g[M.KL].to_numpy(float)
                kl = kl[np.isfinite(kl)]
                grid = np.linspace(float(kl.min()), float(kl.max()), 200)  # the data's range, no further
                ax.plot(xfun(grid), fit.predict(grid), color=c, lw=1.2, ls="-" if fit.sound else "--")
                if fit.sound and grid[0] <= fit.kl_star <= grid[-1]:
                    ax.plot(xfun(fit.kl_star), fit.peak_gain, marker="*", ms=13, color=c, mec="k", mew=0.6, zorder=6)
            ax.axhline(0, color="k", lw=0.6, ls=":")
            ax.margins(x=0.05, y=0.08)
        _symlog(axes[0, j], _with_bounds(sub, M.GAIN_PROXY))
        axes[0, j].set_title(f"error: {law}", fontsize=10)
        axes[1, j].set_xlabel("sqrt KL(pi || pi_0)  [sqrt nats]" if sqrt_kl else "KL(pi || pi_0)  [nats]")
    axes[0, 0].set_ylabel("proxy gain (symlog)")
    axes[1, 0].set_ylabel("utility gain")
    _legend(fig, axes)
    fig.text(
        0.01,
        0.005,
        "lines: Gao et al. fits over each optimizer's KL range (dashed: unsound; none: fewer than 4 points); "
        "star: fitted peak of a sound fit; each panel has its own axes",
        fontsize=7.5,
        color="0.35",
    )
    fig.suptitle(title or "Gains against KL with Gao et al. fits", fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0.02, 1, 0.93))
    return fig


def _symlog_span(values, pad: float = 1.6) -> tuple[float, float]:
    """Limits that hold every value on a symlog axis (linthresh 1) with a margin: a factor `pad`
    beyond |v| > 1, an additive 0.2 inside the linear part; the negative side only when needed."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not v.size:
        return -0.2, 1.0

    def out(x: float) -> float:
        return x * pad if abs(x) > 1 else x + np.sign(x) * 0.2 if x else 0.0

    return min(out(float(v.min())), -0.2), max(out(float(v.max())), 1.0)


def frontier_panels(labelled: pd.DataFrame, title: str = ""):
    """Proxy gain (x, symlog) against utility gain (y) of every optimizer, one panel per error
    law, each optimizer's points joined in order of KL: where a light tail gives utility with
    the proxy, a heavy tail gives proxy without it. Each panel's axes hold its own points."""
    plt = pyplot()
    laws = list(dict.fromkeys(labelled["error_law"]))
    fig, axes = plt.subplots(1, len(laws), figsize=(4.4 * len(laws), 4.2), squeeze=False)
    for j, law in enumerate(laws):
        ax = axes[0, j]
        sub = labelled[labelled["error_law"] == law]
        for algo, g in sub.groupby("algo", sort=False):
            g = g.sort_values(M.KL)
            c = COLORS.get(str(algo))
            ax.plot(g[M.GAIN_PROXY], g[M.GAIN_UTILITY], marker="o", ms=3.5, lw=1.2, color=c, label=str(algo))
            _mark(ax, g, M.GAIN_PROXY, M.GAIN_UTILITY)
        ax.axhline(0, color="k", lw=0.6, ls=":")
        ax.axvline(0, color="k", lw=0.6, ls=":")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(*_symlog_span(sub[M.GAIN_PROXY]))
        ax.margins(y=0.12)
        ax.set_title(f"error: {law}", fontsize=10)
        ax.set_xlabel("proxy gain (symlog)")
    axes[0, 0].set_ylabel("utility gain")
    _legend(fig, axes)
    fig.suptitle(title or "Proxy gain against utility gain", fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    return fig


TRAIN_PANELS = ((M.PROXY, "proxy (training batch)"), (M.UTILITY, "utility (training batch)"), (M.KL, "KL to pi_0"))


def training_curves(curves: pd.DataFrame, title: str = ""):
    """Per-step training curves of trained points: proxy, utility and KL (columns) against
    step, one line per point (`label`), coloured by optimizer; one row per error law, each panel
    with its own y axis (a heavy tail's proxy in the thousands would flatten a light tail's). `curves`: long table with error_law, algo, label, step and the metric
    names of TRAIN_PANELS (per-step values of the training batch)."""
    plt = pyplot()
    laws = list(dict.fromkeys(curves["error_law"]))
    fig, axes = plt.subplots(
        len(laws), len(TRAIN_PANELS), figsize=(13, 3.0 * len(laws) + 0.8), squeeze=False, sharex=True
    )
    styles = ["-", "--", ":", "-."]
    for i, law in enumerate(laws):
        sub = curves[curves["error_law"] == law]
        for k, (label, g) in enumerate(sub.groupby("label", sort=False)):
            g = g.sort_values("step")
            c = COLORS.get(str(g["algo"].iloc[0]))
            for j, (name, _) in enumerate(TRAIN_PANELS):
                if name in g:
                    axes[i, j].plot(g["step"], g[name], color=c, ls=styles[k % len(styles)], lw=1.2, label=str(label))
        axes[i, 0].set_ylabel(f"error: {law}", fontsize=9)
    for j, (_, name) in enumerate(TRAIN_PANELS):
        axes[0, j].set_title(name, fontsize=10)
        axes[-1, j].set_xlabel("training step")
    _legend(fig, axes)
    fig.suptitle(title or "Training curves", fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.9 / fig.get_figheight()))  # room for the title and legend
    return fig
