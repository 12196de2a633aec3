"""Tail plots of one sample: Hill plot, exponential Q-Q of the upper tail, mean excess."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from goodhart.eval.plots import pyplot, save_figure
from goodhart.eval.tails import hill, mean_excess, robust_scale


def tail_plots(x: np.ndarray, out: Path, title: str = "") -> Path:
    """Three panels. Read them together: a power law has a flat Hill plot, a Q-Q curve that
    bends up and a rising mean excess; an exponential a straight Q-Q line and a flat mean
    excess; a Gaussian a Q-Q curve that bends down and a falling mean excess."""
    plt = pyplot()
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    s = robust_scale(x)
    z = (x - np.median(x)) / s  # location/scale-free view, as the verdict uses
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))

    h = hill(x)
    ax[0].plot(h.ks, h.gamma, lw=1.2)
    ax[0].fill_between(h.ks, h.gamma - 1.96 * h.se, h.gamma + 1.96 * h.se, alpha=0.2, lw=0)
    ax[0].axvline(h.k_star, color="k", ls=":", lw=0.8, label=f"k* = {h.k_star}")
    ax[0].set(xlabel="k (upper order statistics)", ylabel="Hill gamma = 1/alpha", title="Hill plot")
    ax[0].legend(fontsize=8)

    top = np.sort(z)[::-1][: max(20, int(0.05 * z.size))]  # top 5%
    k = top.size
    u = top[-1]
    q = -np.log((np.arange(1, k + 1)) / (k + 1))  # standard exponential quantiles, descending
    ax[1].scatter(q, top - u, s=5)
    ax[1].plot([0, q.max()], [0, q.max() * np.median((top - u)[: k // 2] / q[: k // 2])], color="k", lw=0.8, ls=":")
    ax[1].set(
        xlabel="exponential quantile", ylabel="excess over the 95% quantile / scale", title="exponential Q-Q (top 5%)"
    )

    thr = np.quantile(z, np.linspace(0.5, 0.995, 40))
    me = mean_excess(z, thr)
    ax[2].plot(thr, me.e, marker="o", ms=3)
    ax[2].set(xlabel="threshold u / scale", ylabel="E[X - u | X > u] / scale", title="mean excess")
    fig.suptitle(title or "Tail diagnostics", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out)
