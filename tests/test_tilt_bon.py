"""Tilt and best-of-n estimators against closed forms and brute force (docs/concepts.md)."""

import itertools

import numpy as np
import pytest

from goodhart.eval.bon import best_of_n, kl_bound, order_weights
from goodhart.eval.tilt import kl_from_log_weights, log_weights, tilt


@pytest.mark.parametrize("s,beta", [(1.0, 1.0), (1.0, 2.0), (0.5, 0.5)])
def test_gaussian_tilt_matches_closed_form(s, beta):
    # U ~ N(0, s^2) under pi_0  =>  pi_beta has U ~ N(s^2/beta, s^2), KL = s^2 / (2 beta^2).
    rng = np.random.default_rng(0)
    u = rng.normal(0, s, size=(64, 4096))
    est = tilt(u, beta)
    assert est["proxy"].mean() == pytest.approx(s**2 / beta, abs=0.04)
    assert est["kl"].mean() == pytest.approx(s**2 / (2 * beta**2), rel=0.08)


def test_gaussian_tilt_utility_shift_is_var_v_over_beta():
    # U = V + X, V ~ N(0, 1), X ~ N(0, 0.5^2) independent: E_beta[V] = Var(V) / beta.
    rng = np.random.default_rng(1)
    v, x = rng.normal(0, 1, (64, 4096)), rng.normal(0, 0.5, (64, 4096))
    beta = 2.0
    est = tilt(v + x, beta, utility=v)
    assert est["utility"].mean() == pytest.approx(1.0 / beta, abs=0.04)


def test_tilt_kl_never_exceeds_log_n_and_is_stable_for_tiny_beta():
    rng = np.random.default_rng(2)
    r = rng.pareto(1.1, size=(8, 256)) * 1e6  # heavy tail, huge values
    for beta in (1e-9, 1e-3, 1.0, 1e9):
        lw = log_weights(r, beta)
        assert np.all(np.isfinite(lw[lw > -np.inf]))
        kl = kl_from_log_weights(lw)
        assert np.all(kl <= np.log(256) + 1e-9) and np.all(kl >= -1e-12)
    assert kl_from_log_weights(log_weights(r, 1e-12)) == pytest.approx(np.log(256))


@pytest.mark.parametrize("n,expected", [(4, 0.636), (8, 1.204), (1000, 5.909), (65536, 10.09)])
def test_bon_kl_bound_values(n, expected):
    assert kl_bound(n) == pytest.approx(expected, abs=0.001 if n < 65536 else 0.005)


@pytest.mark.parametrize("n,expected", [(4, 1.029), (16, 1.766), (64, 2.344), (256, 2.827)])
def test_bon_of_standard_normals(n, expected):
    rng = np.random.default_rng(3)
    u = rng.normal(size=(200, 1024))
    assert best_of_n(u, n)["proxy"].mean() == pytest.approx(expected, abs=0.02)


def test_bon_jointly_normal_utility_formula():
    # E[V at best-of-n by U] = Cov(V, U) / sd(U) * E[max of n standard normals].
    rng = np.random.default_rng(4)
    v, x = rng.normal(size=(200, 1024)), rng.normal(size=(200, 1024))
    est = best_of_n(v + x, 16, utility=v)
    assert est["utility"].mean() == pytest.approx(1 / np.sqrt(2) * 1.766, abs=0.03)


def _brute(proxy, utility, n):
    subsets = list(itertools.combinations(range(len(proxy)), n))
    best_p, best_u = [], []
    for s in subsets:
        m = max(proxy[i] for i in s)
        winners = [i for i in s if proxy[i] == m]  # random tie-break: average over winners
        best_p.append(m)
        best_u.append(np.mean([utility[i] for i in winners]))
    return np.mean(best_p), np.mean(best_u)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_unbiased_estimator_equals_subset_enumeration(n, ties):
    rng = np.random.default_rng(5)
    proxy = rng.integers(0, 4, 8).astype(float) if ties else rng.normal(size=8)
    utility = rng.normal(size=8)
    est = best_of_n(proxy[None], n, utility=utility[None])
    bp, bu = _brute(proxy, utility, n)
    assert est["proxy"][0] == pytest.approx(bp)
    assert est["utility"][0] == pytest.approx(bu)


def test_order_weights_sum_to_one_and_n_equals_pool_is_the_max():
    p = order_weights(65536, 65536)
    assert p[-1] == pytest.approx(1.0) and p.sum() == pytest.approx(1.0)
    assert order_weights(10, 1) == pytest.approx(np.full(10, 0.1))


def test_bon_pool_kl_sees_ties():
    # A reward with 2 values: best-of-n can only move mass between 2 outcomes, far below the bound.
    proxy = np.repeat([[0.0, 1.0]], 50, axis=1).reshape(1, 100)
    est = best_of_n(proxy, 32)
    assert est["tied"][0] == 1.0
    assert est["kl_pool"][0] == pytest.approx(np.log(2), abs=1e-6)  # all mass on the top half
    assert est["kl_pool"][0] < kl_bound(32)


def test_logsumexp_is_scipys_bit_for_bit():
    # eval.tilt.logsumexp replaces scipy's in the tilt's hot path; it must return the same bits
    # (ties at the maximum, -inf entries, one-element rows, 3-d arrays; non-finite rows go to scipy).
    from scipy.special import logsumexp as scipy_logsumexp

    from goodhart.eval.tilt import logsumexp

    rng = np.random.default_rng(0)
    cases = [rng.normal(size=(4, 5000)) * s for s in (1e-3, 1.0, 30.0, 1e3)]
    cases += [
        np.round(rng.normal(size=(8, 100))),  # many ties at each row's maximum
        rng.pareto(0.5, (4, 1000)),
        np.zeros((3, 5)),
        np.array([1.0, 2.0, -np.inf]),
        np.array([[-np.inf, -np.inf], [0.0, 1.0]]),
        np.array([np.nan, 1.0]),
        np.array([[np.inf, 1.0]]),
        rng.normal(size=(2, 3, 7)),
        np.array([5.0]),
    ]
    for a in cases:
        ref = scipy_logsumexp(a, axis=-1, keepdims=True)
        got = logsumexp(a)
        assert got.shape == ref.shape and np.array_equal(got, ref, equal_nan=True), a


def test_the_tilt_reuses_log_weights_it_is_given_and_the_result_is_the_same():
    rng = np.random.default_rng(1)
    r, v = rng.normal(size=(3, 200)), rng.normal(size=(3, 200))
    lw = log_weights(r, 0.5)
    a, b = tilt(r, 0.5, utility=v), tilt(r, 0.5, logw=lw, utility=v)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(tilt(r, 0.5, logw=log_weights(r, 2.0))["proxy"], a["proxy"])  # it is read
