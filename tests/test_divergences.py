"""The f-divergence-regularised optima of eval/divergences.py against closed forms, Lambert W
and a brute-force convex solve."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special

from goodhart.eval import divergences as D
from goodhart.eval.tilt import tilt


def test_chi2_linear_tilt_on_a_gaussian_reward():
    """No truncation: c = mean(r), gain = Var(r)/coef, chi2 = Var(r)/(2 coef^2) on the pool, and
    near the population values Var/coef and Var/(2 coef^2)."""
    rng = np.random.default_rng(0)
    sd, coef = 1.5, 12.0
    r = rng.normal(0.3, sd, size=(1, 200_000))
    est = D.optimum(r, coef, "chi2")
    var = float(np.var(r))
    assert est["dropped"][0] == 0.0
    np.testing.assert_allclose(est["w"], 1 + (r - r.mean()) / coef, rtol=1e-10)
    np.testing.assert_allclose(est["proxy"] - r.mean(), var / coef, rtol=1e-9)
    np.testing.assert_allclose(est["divergence"], var / (2 * coef**2), rtol=1e-9)
    assert est["proxy"][0] - 0.3 == pytest.approx(sd**2 / coef, rel=0.02)
    assert est["divergence"][0] == pytest.approx(sd**2 / (2 * coef**2), rel=0.02)


def test_chi2_utility_share_is_var_v_over_var_u():
    """r = V + X, X independent: the utility share of the gain is Var(V)/Var(U) (here on the pool:
    Cov(V, U)/Var(U), the sample version)."""
    rng = np.random.default_rng(1)
    v = rng.normal(size=(1, 100_000))
    x = rng.standard_t(5, size=(1, 100_000))
    u = v + x
    est = D.optimum(u, 50.0, "chi2", utility=v)
    share = (est["utility"] - v.mean()) / (est["proxy"] - u.mean())
    np.testing.assert_allclose(share, np.cov(v[0], u[0], ddof=0)[0, 1] / np.var(u), rtol=1e-9)
    assert share[0] == pytest.approx(1 / (1 + 5 / 3), rel=0.05)


def test_chi2_truncates_exactly_where_one_plus_t_is_negative():
    rng = np.random.default_rng(2)
    r = rng.normal(size=(3, 500))
    coef = 0.4
    w = D.weights(r, coef, "chi2")
    a = (r - r.max(1, keepdims=True)) / coef
    for i in range(3):
        s = D.shift(a[i], D.CHI2)
        t = a[i] - s
        assert np.all((w[i] == 0) == (1 + t <= 0))
        np.testing.assert_allclose(w[i], np.maximum(0, 1 + t), atol=1e-12)
        assert 0 < np.mean(w[i] == 0) < 1
    np.testing.assert_allclose(w.mean(1), 1, atol=1e-12)


def test_kl_is_the_project_tilt():
    rng = np.random.default_rng(3)
    r = rng.standard_t(3, size=(4, 300))
    v = rng.normal(size=r.shape)
    est = D.optimum(r, 0.7, "kl", utility=v)
    ref = tilt(r, 0.7, utility=v)
    for k in ("proxy", "utility", "kl", "ess"):
        np.testing.assert_allclose(est[k], ref[k], rtol=1e-10)
    np.testing.assert_allclose(est["divergence"], est["kl"])


def test_mixed_weights_are_lambert_w():
    rng = np.random.default_rng(4)
    r = rng.normal(size=(2, 400))
    coef = 0.5
    w = D.weights(r, coef, "mixed_chi2_kl")
    a = (r - r.max(1, keepdims=True)) / coef
    for i in range(2):
        t = a[i] - D.shift(a[i], D.MIXED)
        np.testing.assert_allclose(w[i], special.lambertw(np.exp(t)).real, rtol=1e-9)
        np.testing.assert_allclose(w[i] + np.log(w[i]), t, atol=1e-9)  # f'(w) = w + log w = t
    # Far beyond exp's range (t ~ 2000) the weights are still right: w + log w = t.
    big = D.weights(np.array([[0.0, 1000.0, 1000.5]]), 0.5, "mixed_chi2_kl")
    assert np.isfinite(big).all() and big.mean() == pytest.approx(1)


def _brute(r: np.ndarray, coef: float, div: D.Divergence) -> tuple[np.ndarray, float]:
    """max mean(w r) - coef mean(f(w)) s.t. mean(w) = 1, w >= 0, by SLSQP from uniform weights."""
    n = r.size
    lo = 0.0 if div.name == "chi2" else 1e-12  # log terms need w > 0 (their optimum is interior)

    def neg(w):
        return -(np.mean(w * r) - coef * np.mean(div.f(np.maximum(w, lo))))

    res = optimize.minimize(
        neg,
        np.ones(n),
        method="SLSQP",
        bounds=[(lo, n)] * n,
        constraints=[{"type": "eq", "fun": lambda w: np.mean(w) - 1}],
        options={"ftol": 1e-14, "maxiter": 2000},
    )
    return res.x, -res.fun


@pytest.mark.parametrize("name", D.DIVERGENCES)
@pytest.mark.parametrize("coef", [0.3, 1.5])
def test_optimum_matches_brute_force_convex_solve(name, coef):
    """On a 20-sample pool the closed-form/root weights reach the brute-force optimum of the
    regularised objective, and no feasible w beats them."""
    rng = np.random.default_rng(5)
    r = rng.standard_t(3, size=20)
    div = D.get(name)
    w = D.weights(r[None], coef, name)[0]
    obj = float(np.mean(w * r) - coef * np.mean(div.f(w)))
    wb, ob = _brute(r, coef, div)
    assert obj >= ob - 1e-7, (obj, ob)
    np.testing.assert_allclose(w, wb, atol=2e-3)
    # Any other feasible weight (mean 1, >= 0) does no better.
    for _ in range(50):
        z = rng.dirichlet(np.ones(20)) * 20
        assert np.mean(z * r) - coef * np.mean(div.f(z)) <= obj + 1e-12


def test_reported_divergence_and_kl_are_exact_on_the_pool():
    rng = np.random.default_rng(6)
    r = rng.lognormal(size=(2, 50))
    for name in D.DIVERGENCES:
        est = D.optimum(r, 0.8, name)
        w = est["w"]
        xlogx = np.where(w > 0, w * np.log(np.where(w > 0, w, 1)), 0)
        np.testing.assert_allclose(est["kl"], xlogx.mean(1))
        np.testing.assert_allclose(est["divergence"], D.get(name).f(w).mean(1))
        np.testing.assert_allclose(est["ess"], w.sum(1) ** 2 / np.square(w).sum(1))


def test_hellinger_weights_solve_its_stationarity():
    rng = np.random.default_rng(7)
    r = rng.normal(size=(1, 300))
    w = D.weights(r, 0.6, "hellinger")[0]
    g = 1 - 1 / np.sqrt(w)  # f'(w) = (r - c)/coef: affine in r with slope 1/coef
    slope = np.polyfit(r[0], g, 1)[0]
    assert slope == pytest.approx(1 / 0.6, rel=1e-8)


def test_unknown_divergence_is_named():
    with pytest.raises(KeyError, match="chi3"):
        D.get("chi3")
