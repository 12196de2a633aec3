"""The error of a learned reward, and where an optimized policy puts its mass on it.

A learned proxy (a reward model) and the gold utility live on different scales, so the raw
difference proxy - gold means nothing. The error used here is

    e = (proxy - mean_0 proxy) / sd_0 proxy  -  (gold - mean_0 gold) / sd_0 gold

with mean_0 and sd_0 taken over the base policy's pool (all prompts x samples), and kept
fixed when the policy changes: under the base policy e has mean 0 by construction, and under
an optimized policy its mean and its upper tail show how far optimization pushed into the
region where the reward model overrates text.

An optimized policy that reweights the base pool (tilt, best-of-n) has exact weights on the
pool's samples, so the error's whole distribution under it is known: its mean, the mass it
puts above the base error's upper quantile (1 - q under the base by construction), and a
weighted resample for the tail diagnostics of eval/tails.py.
"""

from __future__ import annotations

import numpy as np

from goodhart.eval.bon import order_weights
from goodhart.eval.tilt import log_weights


def standardized_error(proxy: np.ndarray, utility: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """(e, the base moments used): e as defined in the module docstring, same shape as proxy."""
    proxy, utility = np.asarray(proxy, np.float64), np.asarray(utility, np.float64)
    m = {
        "proxy_mean": float(proxy.mean()),
        "proxy_sd": float(proxy.std()) or 1.0,
        "utility_mean": float(utility.mean()),
        "utility_sd": float(utility.std()) or 1.0,
    }
    e = (proxy - m["proxy_mean"]) / m["proxy_sd"] - (utility - m["utility_mean"]) / m["utility_sd"]
    return e, m


def tilt_weights(proxy: np.ndarray, beta: float) -> np.ndarray:
    """Per-prompt weights of pi_beta ~ pi_0 exp(proxy / beta) on the pool (rows sum to 1)."""
    return np.exp(log_weights(np.asarray(proxy, np.float64), beta))


def bon_weights(proxy: np.ndarray, n: int) -> np.ndarray:
    """Per-prompt probability that each pool sample is the best of a uniform n-subset by proxy;
    samples with tied proxies share their group's mass equally (random tie-breaking)."""
    proxy = np.asarray(proxy, np.float64)
    P, N = proxy.shape
    p = order_weights(N, n)
    order = np.argsort(proxy, axis=1, kind="stable")
    w = np.empty_like(proxy)
    for row in range(P):
        r = proxy[row, order[row]]
        g = np.concatenate([[0], np.cumsum(np.diff(r) != 0)])
        mass = np.bincount(g, weights=p) / np.bincount(g)
        w[row, order[row]] = mass[g]
    return w


def shift(e: np.ndarray, w: np.ndarray, base_e: np.ndarray | None = None, q: float = 0.99) -> dict[str, float]:
    """The error under a policy with per-prompt weights w on the pool (each row sums to 1; prompts
    weigh equally): its mean and the mass above the base error's q-quantile (1 - q under the base)."""
    base_e = e if base_e is None else base_e
    thr = float(np.quantile(base_e, q))
    P = e.shape[0]
    return {
        "mean": float((w * e).sum() / P),
        "tail_mass": float((w * (e > thr)).sum() / P),
        "base_tail_mass": float(np.mean(base_e > thr)),
        "threshold": thr,
        "q": q,
    }


def weighted_resample(e: np.ndarray, w: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`size` draws of e under the policy (prompt uniform, then a sample by its weight). The draws
    repeat pool values: a tail statistic of them rests on the pool's distinct values, no more."""
    rng = np.random.default_rng(seed)
    P, N = e.shape
    rows = rng.integers(0, P, size)
    cum = np.cumsum(w, axis=1)
    u = rng.random(size) * cum[rows, -1]
    cols = np.minimum((cum[rows] < u[:, None]).sum(axis=1), N - 1)
    return e[rows, cols]
