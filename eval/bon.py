"""Best-of-n from one pool of N >= n samples, without re-sampling.

Sort a prompt's pool by proxy, ascending. The i-th smallest (1-based) is the maximum of a
uniformly random n-subset with probability

    p_i = C(i-1, n-1) / C(N, n)

so E[f(best of n)] = sum_i p_i f_(i) exactly (the unbiased order-statistic estimator; Gao et
al. 2022, app. I). Tied proxies: the winner among ties is random, so f is averaged within each
tied group first.

KL of best-of-n to the base: log n - (n-1)/n, an upper bound, exact for continuous rewards
without ties (Beirami et al. 2024). With ties (duplicate texts, discrete rewards) the bound is
loose; the plug-in estimate sum_g p_g log(p_g / q_g) over tied groups g (q_g = share of the
pool) measures it from the pool.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


def kl_bound(n: int | np.ndarray) -> np.ndarray | float:
    """log n - (n - 1) / n: 0.636 at n=4, 1.204 at 8, 5.909 at 1000."""
    n = np.asarray(n, dtype=np.float64)
    out = np.log(n) - (n - 1) / n
    return float(out) if out.ndim == 0 else out


def order_weights(N: int, n: int) -> np.ndarray:
    """p_i = C(i-1, n-1) / C(N, n) for i = 1..N (zero for i < n), in log space for large N."""
    if not 1 <= n <= N:
        raise ValueError(f"best-of-n needs 1 <= n <= N, got n={n}, N={N}")
    i = np.arange(1, N + 1, dtype=np.float64)
    logc = lambda a, b: gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)  # noqa: E731
    with np.errstate(invalid="ignore"):
        logp = np.where(i >= n, logc(i - 1, n - 1) - logc(float(N), float(n)), -np.inf)
    p = np.exp(logp)
    return p / p.sum()  # exact up to rounding; renormalise away the last ulp


def _tie_groups(sorted_r: np.ndarray) -> np.ndarray:
    """Group id per position of an ascending row: equal values share an id."""
    return np.concatenate([[0], np.cumsum(np.diff(sorted_r) != 0)])


def sort_order(proxy: np.ndarray) -> np.ndarray:
    """Each row's ascending order by proxy (a stable sort: ties keep their pool order). It is the
    same for every n: a sweep sorts a pool once and hands it to best_of_n."""
    return np.argsort(np.asarray(proxy, dtype=np.float64), axis=-1, kind="stable")


def best_of_n(
    proxy: np.ndarray, n: int, order: np.ndarray | None = None, **values: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-prompt expected proxy (and every array in `values`) of the best of n by proxy.

    proxy and values: shape (P, N); order: sort_order(proxy) when the caller has it. Also returns
    ``kl_pool`` (plug-in KL from the pool, which sees ties) and ``tied`` (fraction of the pool
    sharing its proxy value with another sample)."""
    proxy = np.asarray(proxy, dtype=np.float64)
    P, N = proxy.shape
    p = order_weights(N, n)
    order = sort_order(proxy) if order is None else order
    r_sorted = np.take_along_axis(proxy, order, axis=-1)
    out: dict[str, np.ndarray] = {"proxy": r_sorted @ p}
    sorted_vals = {k: np.take_along_axis(np.asarray(v, dtype=np.float64), order, axis=-1) for k, v in values.items()}
    kl_pool, tied = np.empty(P), np.empty(P)
    for k in sorted_vals:
        out[k] = np.empty(P)
    pos_p = p > 0
    kl_untied = np.sum(p[pos_p] * np.log(p[pos_p] / (1.0 / N)))  # every group a single sample
    for row in range(P):
        steps = np.diff(r_sorted[row]) != 0
        if steps.all():  # no ties (a continuous proxy): each sample is its own group
            kl_pool[row], tied[row] = kl_untied, 0.0
            for k, v in sorted_vals.items():
                out[k][row] = v[row] @ p
            continue
        g = np.concatenate([[0], np.cumsum(steps)])  # _tie_groups
        n_groups = g[-1] + 1
        size = np.bincount(g, minlength=n_groups)
        pg = np.bincount(g, weights=p, minlength=n_groups)
        qg = size / N
        pos = pg > 0
        kl_pool[row] = np.sum(pg[pos] * np.log(pg[pos] / qg[pos]))
        tied[row] = np.mean(size[g] > 1)
        for k, v in sorted_vals.items():
            # Random tie-breaking: each tied group contributes its mean value with its total mass.
            gmean = np.bincount(g, weights=v[row], minlength=n_groups) / size
            out[k][row] = gmean @ pg
    out["kl_pool"], out["tied"] = kl_pool, tied
    return out
