"""Do the 95% intervals cover the exact value 95% of the time?

Distributional best-of-n (V ~ N(0, 1), X ~ a law, independent; the pipeline's own draws and
estimator) and the Gaussian tilt, against exact values: numerical integration of
E[V | best of n] (eval/exact.py) and the tilt's closed form. One trial = one (law, seed) = one
sweep's pool of P prompts x N samples; the interval is the one `summarize` reports
(eval.interval=t).

Independence. Each law draws from its own stream at each seed (rewards/distributional.py), so
pools of different laws are independent trials. The values of n read from one pool are not:
they share its draws. The pooled coverage's standard error is therefore the cluster-robust one,
clusters = pools (`cluster_se`), not the binomial sqrt(p (1 - p) / trials).
"""

import numpy as np
import pytest
from scipy import stats

from goodhart.eval.bon import best_of_n
from goodhart.eval.bootstrap import mean_ci, resample_indices, t_ci
from goodhart.eval.exact import bon_utility, expected_max_normal, gaussian_tilt_shift
from goodhart.eval.tilt import tilt
from goodhart.rewards.distributional import draw
from goodhart.rewards.laws import Law


def scipy_law(law: Law):
    """The frozen scipy law of loc + scale * (Z - shift) for a project Law."""
    z = law.standard
    shift = float(z.median()) if law.center else 0.0
    return z.dist(*z.args, loc=law.loc - law.scale * shift, scale=law.scale)


def test_exact_bon_matches_closed_form_and_brute_force():
    # V, X ~ N(0, 1): E[V | best of n by V + X] = E[max of n] / sqrt(2).
    ns = [1, 4, 16, 64, 256]
    got = bon_utility(stats.norm(), stats.norm(), ns)
    want = np.array([0.0, *(expected_max_normal(n) for n in ns[1:])]) / np.sqrt(2)
    assert np.allclose(got, want, atol=2e-3)
    assert np.allclose([expected_max_normal(n) for n in (4, 16, 64, 256)], [1.029, 1.766, 2.344, 2.827], atol=1e-3)
    # A heavy error, n = 4, against a large Monte Carlo (5 standard errors).
    x = scipy_law(Law("pareto", alpha=1.5, center=True))
    rng = np.random.default_rng(0)
    v, e = rng.normal(size=(200_000, 4)), x.rvs(size=(200_000, 4), random_state=rng)
    pick = v[np.arange(len(v)), (v + e).argmax(1)]
    assert abs(bon_utility(stats.norm(), x, [4])[0] - pick.mean()) < 5 * pick.std() / np.sqrt(len(pick))


def coverage_trials(laws, ns, seeds, P, N, method="t"):
    """hits[law][seed] = one bool per n: does that pool's interval hold the exact value?"""
    hits: dict[str, list[list[bool]]] = {}
    for name, law in laws.items():
        exact = bon_utility(stats.norm(), scipy_law(law), ns)
        for seed in seeds:
            d = draw(Law("gaussian"), law, P, N, seed)
            idx = resample_indices(P, 1000, seed) if method == "bootstrap" else None
            row = []
            for n, ex in zip(ns, exact):
                u = best_of_n(d["proxy"], n, utility=d["utility"])["utility"]
                _, lo, hi = t_ci(u) if method == "t" else mean_ci(u, idx)
                row.append(bool(lo <= ex <= hi))
            hits.setdefault(name, []).append(row)
    return hits


def cells(hits, ns):
    """Coverage per (law, n) cell."""
    return {(name, n): float(np.mean([r[j] for r in rows])) for name, rows in hits.items() for j, n in enumerate(ns)}


def cluster_se(hits) -> tuple[float, float, float]:
    """(pooled coverage, cluster-robust se with pools as clusters, binomial se as if every
    (pool, n) were independent)."""
    clusters = np.array([r for rows in hits.values() for r in rows], dtype=float)  # (pools, ns)
    p = clusters.mean()
    total = clusters.size
    resid = (clusters - p).sum(axis=1)
    g = len(clusters)
    se = float(np.sqrt(g / (g - 1) * np.sum(resid**2)) / total)
    return float(p), se, float(np.sqrt(p * (1 - p) / total))


def coverage(laws, ns, seeds, P, N, method="t"):
    """Fraction of (law, n, seed) trials whose interval holds the exact value, per cell."""
    return cells(coverage_trials(laws, ns, seeds, P, N, method), ns)


def test_laws_draw_independently_and_one_law_repeats_its_pool():
    a = draw(Law("gaussian"), Law("pareto", alpha=1.5, center=True), 8, 512, 3)
    b = draw(Law("gaussian"), Law("lognormal", sigma=1.5), 8, 512, 3)
    rank = lambda x: np.argsort(np.argsort(x.ravel()))  # noqa: E731
    # One stream per seed made these two the same trial (monotone maps of the same uniforms).
    assert abs(np.corrcoef(rank(a["error"]), rank(b["error"]))[0, 1]) < 0.05
    assert abs(np.corrcoef(a["utility"].ravel(), b["utility"].ravel())[0, 1]) < 0.05
    # Common random numbers where pairing needs them: the same laws and seed, the same pool.
    c = draw(Law("gaussian"), Law("pareto", alpha=1.5, center=True), 8, 512, 3)
    assert np.array_equal(a["proxy"], c["proxy"])


LAWS = {
    "gaussian": Law("gaussian"),
    "pareto(1.5)": Law("pareto", alpha=1.5, center=True),
    "lognormal(1.5)": Law("lognormal", sigma=1.5),
}


def test_t_intervals_cover_best_of_n_fast():
    # 3 laws x 120 seeds = 360 independent pools, 3 values of n read from each: 1080 (pool, n)
    # trials in 360 clusters. The honest se of the pooled coverage is the cluster-robust one:
    # measured 96.5% with se 0.64% (the binomial se over 1080 trials would say 0.56%).
    ns = [4, 64, 256]
    hits = coverage_trials(LAWS, ns, range(120), P=32, N=1024)
    cov = cells(hits, ns)
    pooled, se, se_binomial = cluster_se(hits)
    assert 0.92 <= pooled <= 0.975 and 0.003 < se < 0.012, (pooled, se, cov)
    assert se > se_binomial  # the n of one pool are positively correlated trials
    assert min(cov.values()) >= 0.85, cov


def test_t_intervals_cover_gaussian_tilt_fast():
    # V, X ~ N(0, 1): under the exact tilt E[V] shifts by Var(V) / beta.
    hits = []
    for seed in range(150):
        d = draw(Law("gaussian"), Law("gaussian"), 32, 2048, seed)
        for beta in (4.0, 2.0):
            est = tilt(d["proxy"], beta, utility=d["utility"])
            gain = est["utility"] - d["utility"].mean(1)
            _, lo, hi = t_ci(gain)
            hits.append(lo <= gaussian_tilt_shift(1.0, beta) <= hi)
    assert 0.92 <= np.mean(hits) <= 0.98


@pytest.mark.slow
def test_t_intervals_cover_best_of_n_full():
    laws = {**LAWS, "student_t(2)": Law("student_t", df=2.0), "levy": Law("levy")}
    ns = [4, 64, 1024]
    hits = coverage_trials(laws, ns, range(300), P=32, N=4096)
    cov = cells(hits, ns)
    pooled, se, _ = cluster_se(hits)
    assert 0.93 <= pooled <= 0.97, (pooled, se, cov)
    assert min(cov.values()) >= 0.9, cov


@pytest.mark.slow
def test_percentile_bootstrap_over_8_prompts_undercovers():
    # The old default (8 prompts, percentile bootstrap): what the t interval replaced.
    cov = coverage(LAWS, [4, 64, 256], range(200), P=8, N=1024, method="bootstrap")
    assert np.mean(list(cov.values())) < 0.92, cov
