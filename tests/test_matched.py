"""Matched KL (eval/matched.py, issue 31): each optimum's coefficient solved for a KL target on its
pool, the argmax limit at the end of every grid, the per-prompt KL budget against the pool's by
duality, best-of-n with a real n (eval/bon.py), and `dropped` counting truncation only."""

from __future__ import annotations

import numpy as np
import pytest

from goodhart.eval import bon as B
from goodhart.eval import divergences as D
from goodhart.eval import matched as Mt


def _pool(law: str, P: int = 6, N: int = 2048, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = {
        "gaussian": rng.normal(size=(P, N)),
        "pareto": rng.pareto(1.5, size=(P, N)) + 1,
        "levy": 1 / rng.normal(size=(P, N)) ** 2,
    }[law]
    return rng.normal(size=(P, N)) + x


@pytest.mark.parametrize("law", ["gaussian", "pareto", "levy"])
@pytest.mark.parametrize("div", D.DIVERGENCES)
def test_every_divergence_reaches_every_target_and_its_kl_falls_with_coef(law, div):
    r = _pool(law)
    cs = np.geomspace(1e-3, 1e4, 40) * Mt._scale(r)
    ks = np.array([Mt.kl_at(r, c, div).mean() for c in cs])
    assert np.all(np.diff(ks) <= 1e-12), "KL of the optimum must fall as coef grows"
    known: dict[float, float] = {}
    for target in (0.25, 1.0, 3.0, 6.0, 7.5):
        c = Mt.coef_for_kl(r, target, div, known=known)
        assert np.all(c == c[0]) and c[0] > 0
        assert Mt.kl_at(r, c, div).mean() == pytest.approx(target, rel=3 * Mt.KL_RTOL)
        est = Mt.optimum_at(r, c, div)
        assert est["kl"].mean() == pytest.approx(target, rel=3 * Mt.KL_RTOL)


def test_a_target_past_the_argmax_is_the_argmax_limit():
    """log N without ties; a clip at the base q99 ties the top 1%: log 100 is all it reaches."""
    r = _pool("pareto", N=4096)
    assert np.all(Mt.coef_for_kl(r, np.log(4096) + 0.5) == 0)
    est = Mt.optimum_at(r, 0.0, "chi2", v=r)
    np.testing.assert_allclose(est["kl"], np.log(4096))
    np.testing.assert_allclose(est["v"], r.max(1))
    assert np.all(est["dropped"] == 0)
    clipped = np.minimum(r, np.quantile(r, 0.99, axis=1, keepdims=True))
    top = Mt.reach(clipped)
    np.testing.assert_allclose(top, np.log(4096 / np.sum(clipped == clipped.max(1, keepdims=True), 1)))
    assert np.all(np.abs(top - np.log(100)) < 0.05)
    assert np.all(Mt.coef_for_kl(clipped, 6.0) == 0)  # beyond what any clipped optimum reaches
    lim = Mt.optimum_at(clipped, 0.0, "kl")
    np.testing.assert_allclose(lim["kl"], top)
    # the limit is where the KL tilt's coefficient goes to 0
    near = Mt.optimum_at(r, 1e-6, "kl", v=r)
    np.testing.assert_allclose(near["v"], r.max(1), rtol=1e-9)


def test_per_prompt_budget_against_the_pools_coefficient_by_duality():
    """The pool's matched coef maximises the mean proxy under a budget on the *mean* KL, so it
    beats the per-prompt budget (feasible for that constraint); the per-prompt budget maximises
    each prompt's proxy under its own KL, so it beats the pool's solution on every prompt whose
    KL is within the budget."""
    r = _pool("pareto", P=8)
    target = 2.0
    cp = Mt.coef_for_kl(r, target, per_prompt=True)
    assert len(np.unique(cp)) == 8
    per = Mt.optimum_at(r, cp, "kl")
    np.testing.assert_allclose(per["kl"], target, rtol=3 * Mt.KL_RTOL)
    pool = Mt.optimum_at(r, Mt.coef_for_kl(r, target), "kl")
    assert pool["kl"].mean() == pytest.approx(target, rel=3 * Mt.KL_RTOL)
    assert pool["proxy"].mean() >= per["proxy"].mean() - 1e-9
    within = pool["kl"] <= target
    assert within.any() and not within.all()
    assert np.all(per["proxy"][within] >= pool["proxy"][within] - 1e-9)
    with pytest.raises(ValueError, match="per-prompt"):
        Mt.coef_for_kl(r, target, "chi2", per_prompt=True)


def test_gaussian_tilt_at_matched_kl_has_the_closed_form_gain():
    """U = V + X, both N(0, 1): the tilt at beta has KL Var(U)/(2 beta^2) = 1/beta^2 and utility
    gain Var(V)/beta, so at a matched KL k the utility gain is sqrt(k) (population)."""
    rng = np.random.default_rng(1)
    v = rng.normal(size=(4, 2**18))
    u = v + rng.normal(size=v.shape)
    for k in (0.25, 1.0):
        est = Mt.optimum_at(u, Mt.coef_for_kl(u, k), "kl", utility=v)
        assert float(np.mean(est["utility"] - v.mean(1))) == pytest.approx(np.sqrt(k), rel=0.03)


def test_best_of_n_with_a_real_n():
    """(i/N)^n - ((i-1)/N)^n: the law of the max of n draws with replacement (brute force at
    integer n), KL on the pool -> log n - (n-1)/n for n << N, and n_for_kl inverts it."""
    N = 7
    for n in (1, 2, 3):
        p = B.power_weights(N, n)
        grid = np.stack(np.meshgrid(*[np.arange(N)] * n, indexing="ij"), -1).reshape(-1, n).max(1)
        np.testing.assert_allclose(p, np.bincount(grid, minlength=N) / N**n, atol=1e-15)
    for n in (2.0, 4.0, 8.5, 100.0):
        assert B.power_kl(2**16, n) == pytest.approx(B.kl_bound(n), abs=2e-3)
    for target in (0.1, 1.0, 5.0):
        assert B.power_kl(4096, B.n_for_kl(4096, target)) == pytest.approx(target, rel=1e-9)
    assert np.isinf(B.n_for_kl(4096, np.log(4096)))
    r = _pool("gaussian", P=3, N=4096)
    est = B.best_of_n_power(r, 4.0, v=r)
    np.testing.assert_allclose(est["v"], B.best_of_n(r, 4, v=r)["v"], rtol=2e-3)  # with vs without replacement
    np.testing.assert_allclose(est["kl"], B.power_kl(4096, 4.0))
    top = B.best_of_n_power(r, float("inf"), v=r)
    np.testing.assert_allclose(top["v"], r.max(1))
    # ties: the KL target is met on the tied pool's own KL
    tied = np.round(r, 1)
    n = B.n_for_kl(4096, 2.0, tied)
    assert float(np.mean(B.best_of_n_power(tied, n)["kl"])) == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("div", ["kl", "mixed_chi2_kl", "hellinger"])
def test_dropped_counts_truncation_not_underflow(div):
    """At coef 1e-4 the KL and mixed weights of all but the top underflow to 0.0, yet none is
    dropped: their f'(0+) = -inf keeps every weight positive. chi2 truncates where 1 + t <= 0."""
    r = _pool("gaussian", P=2, N=512)
    est = D.optimum(r, 1e-4, div)
    if div != "hellinger":
        assert np.mean(est["w"] == 0) > 0.9  # float underflow
    np.testing.assert_array_equal(est["dropped"], 0.0)
    chi = D.optimum(r, 1e-4, "chi2")
    np.testing.assert_allclose(chi["dropped"], np.mean(chi["w"] == 0, axis=1))
    assert np.all(chi["dropped"] > 0.9)


@pytest.mark.parametrize("algo", [["algo=bon"], ["algo=tilt"], ["algo=tilt", "algo.kl.per_prompt=true"]])
def test_points_at_a_kl_target_carry_the_heldout_gain(tmp_path, algo):
    """Best-of-n and the tilts placed by algo.kl.target weigh the held-out proxy (eval.holdout) as
    they weigh gold: with a held-out error sharing half the proxy's, the estimate's bias is half
    the error's gain under the policy (docs/holdout.md), as at a fixed knob."""
    from goodhart.eval import metrics as M
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.optimizers import bon, tilt

    over = ["reward=distributional", "sampling.n=2048", "prompts.n_eval=16", "reward.error=gaussian"]
    over += ["eval.holdout=independent", "eval.holdout.shared=0.5", "algo.kl.target=1", *algo]
    ctx = PointContext(load_config(None, over), tmp_path, progress=False)
    row = (bon if algo[0] == "algo=bon" else tilt).run(ctx).row
    assert row[M.KL] == pytest.approx(1.0, rel=1e-3)
    bias = row[M.GAIN_HOLDOUT] - row[M.GAIN_UTILITY]
    expect = 0.5 * (row[M.GAIN_PROXY] - row[M.GAIN_UTILITY])
    assert expect > 0.3 and abs(bias - expect) < 0.15 * expect, (bias, expect)
