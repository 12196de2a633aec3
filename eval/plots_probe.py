"""The probe's picture: reward distributions of random sequences, base completions and the
optimized sequences on one axis, with the base policy's quantiles marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from goodhart.eval.plots import pyplot, save_figure

COLORS = {"random": "#7f7f7f", "base": "#1f77b4", "optimized": "#d62728"}


def reward_distributions(
    samples: dict[str, np.ndarray],
    optimized: list[float],
    base_quantiles: dict[str, float],
    out: Path,
    title: str = "",
) -> Path:
    """Density histograms (log y, so the tails show) of each sample, a red line per optimized
    sequence's reward, dotted lines at the base policy's quantiles (labelled on top)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.2))
    values = [np.asarray(x, float) for x in samples.values()] + [np.asarray(optimized, float)]
    allv = np.concatenate([v for v in values if v.size])
    lo, hi = float(allv.min()), float(allv.max())
    pad = 0.03 * (hi - lo or 1.0)
    bins = np.linspace(lo - pad, hi + pad, 80)
    for name, x in samples.items():
        ax.hist(
            x,
            bins=bins,
            density=True,
            histtype="stepfilled",
            alpha=0.35,
            color=COLORS.get(name),
            label=f"{name} (n={len(x)})",
        )
        ax.hist(x, bins=bins, density=True, histtype="step", color=COLORS.get(name), lw=1)
    for i, r in enumerate(optimized):
        ax.axvline(r, color=COLORS["optimized"], lw=1.6, label="optimized (ACG)" if i == 0 else None)
    for name, q in base_quantiles.items():
        ax.axvline(q, color=COLORS["base"], ls=":", lw=1)
        ax.annotate(name, (q, 1.0), xycoords=("data", "axes fraction"), fontsize=7, rotation=90, va="top", ha="right")
    ax.set_yscale("log")
    ax.set(xlabel="reward", ylabel="density (log)", title=title or "reward distributions")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return save_figure(fig, out)
