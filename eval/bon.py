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
    """Each row's ascending order by proxy (a stable sort: ties keep their pool order)."""
    return np.argsort(np.asarray(proxy, dtype=np.float64), axis=-1, kind="stable")


def sorted_by_proxy(proxy: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """The pool's rows in ascending proxy order (a stable sort, as ``sort_order``): the proxy, then
    each of ``values``. The same for every n: a sweep sorts a pool once (pool_memo) and hands it to
    best_of_n as ``presorted``."""
    proxy = np.asarray(proxy, dtype=np.float64)
    order = sort_order(proxy)
    return tuple(np.take_along_axis(np.asarray(v, dtype=np.float64), order, axis=-1) for v in (proxy, *values))


def best_of_n(
    proxy: np.ndarray, n: int, presorted: dict[str, np.ndarray] | None = None, **values: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-prompt expected proxy (and every array in `values`) of the best of n by proxy.

    proxy and values: shape (P, N). Also returns ``kl_pool`` (plug-in KL from the pool, which sees
    ties) and ``tied`` (fraction of the pool sharing its proxy value with another sample).
    ``presorted``: the pool already in proxy order (``sorted_by_proxy``, as a sweep keeps it per
    pool), as {"proxy": ..., name: ...}; every array in it besides the proxy is weighed (``values``
    then unused)."""
    proxy = np.asarray(proxy, dtype=np.float64)
    P, N = proxy.shape
    p = order_weights(N, n)
    if presorted is None:
        presorted = dict(zip(["proxy", *values], sorted_by_proxy(proxy, *values.values())))
    r_sorted, sorted_vals = presorted["proxy"], {k: v for k, v in presorted.items() if k != "proxy"}
    out: dict[str, np.ndarray] = {"proxy": r_sorted @ p}
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


# ============================================================================================
# Best-of-n with a real n, at a matched KL
# ============================================================================================
# For continuous rewards best-of-n is the policy whose reward CDF is F_0^n; that policy exists for
# every real n >= 1, and its KL to the base is log n - (n - 1)/n exactly:
#     KL = int n F^(n-1) log(n F^(n-1)) dF = log n + (n - 1) int_0^1 n u^(n-1) log u du.
# On a pool it is the maximum of n draws *with replacement* from the pool's empirical law: the
# i-th smallest of N gets p_i = (i/N)^n - ((i-1)/N)^n, and its KL on the pool is
# sum_i p_i log(N p_i) (-> log N, the argmax, as n -> inf). For n << N it agrees with the
# without-replacement estimator above to O(n/N); at matched KL it is the pool's best-of-n on the
# same footing as the tilts (an exact policy on the pool, its KL exact on the pool).
def power_weights(N: int, n: float) -> np.ndarray:
    """p_i = (i/N)^n - ((i-1)/N)^n for i = 1..N (ascending ranks), for real n >= 1; computed as
    (i/N)^n (1 - (1 - 1/i)^n) with expm1/log1p, exact where the two powers nearly cancel."""
    if not n >= 1:
        raise ValueError(f"best-of-n needs n >= 1, got {n}")
    i = np.arange(1, N + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        tail = -np.expm1(n * np.log1p(-1.0 / i))  # 1 - (1 - 1/i)^n; 1 at i = 1
    p = np.exp(n * np.log(i / N)) * tail
    return p / p.sum()


def power_kl(N: int, n: float) -> float:
    """KL on a pool of N distinct values of the best-of-n with replacement: sum p_i log(N p_i)."""
    p = power_weights(N, n)
    pos = p > 0
    return float(np.sum(p[pos] * np.log(N * p[pos])))


def n_for_kl(N: int, target: float, proxy: np.ndarray | None = None) -> float:
    """The real n whose best-of-n with replacement has KL `target` on a pool of N distinct
    values (KL increases with n from 0 at n = 1 to log N); inf at or beyond log N (the argmax).
    With `proxy` (P, N) that has ties: the n whose mean KL over prompts, ties grouped, is the
    target (inf at or beyond the mean of log(N / ties at the top))."""
    from scipy import optimize

    if target <= 0:
        return 1.0
    kl = lambda n: power_kl(N, n)  # noqa: E731
    top = np.log(N)
    if proxy is not None:
        s = np.sort(np.asarray(proxy, dtype=np.float64), axis=-1)
        if np.any(s[:, 1:] == s[:, :-1]):
            kl = lambda n: float(np.mean(best_of_n_power(proxy, n)["kl"]))  # noqa: E731
            top = float(np.mean(np.log(N / np.sum(s == s[:, -1:], axis=-1))))
    if target >= top - 1e-9:
        return float("inf")
    hi = 1.0
    while kl(np.exp(hi)) < target:
        hi *= 2.0
        if hi > 700:
            return float("inf")
    x = optimize.brentq(lambda x: kl(np.exp(x)) - target, 0.0, hi, xtol=1e-12, rtol=1e-12)
    return float(np.exp(x))


def best_of_n_power(proxy: np.ndarray, n: float, **values: np.ndarray) -> dict[str, np.ndarray]:
    """Per prompt, the best-of-n with replacement from the pool (real n; inf: the argmax, uniform
    over the top ties): expected proxy and every array in `values`, ``kl`` on the pool (tied values
    grouped, as best_of_n's plug-in) and the weights ``w`` (pi/pi_0 per sample, mean 1)."""
    proxy = np.asarray(proxy, dtype=np.float64)
    P, N = proxy.shape
    order = np.argsort(proxy, axis=-1, kind="stable")
    r_sorted = np.take_along_axis(proxy, order, axis=-1)
    p = np.zeros(N)
    if np.isinf(n):
        p[-1] = 1.0
    else:
        p = power_weights(N, n)
    w = np.empty_like(proxy)
    kl = np.empty(P)
    for row in range(P):
        g = _tie_groups(r_sorted[row])
        size = np.bincount(g)
        pg = np.bincount(g, weights=p, minlength=size.size)
        if np.isinf(n):  # the argmax: every sample tied at the top alike
            pg = np.zeros(size.size)
            pg[-1] = 1.0
        pos = pg > 0
        kl[row] = np.sum(pg[pos] * np.log(pg[pos] * N / size[pos]))
        ws = (pg / size)[g] * N  # a tied group's mass spread evenly over its members
        w[row, order[row]] = ws
    out: dict[str, np.ndarray] = {"w": w, "proxy": np.mean(w * proxy, axis=-1), "kl": kl}
    for k, v in values.items():
        out[k] = np.mean(w * np.asarray(v, dtype=np.float64), axis=-1)
    return out
