"""Every prediction line of the arena (pipeline/report/arena_theory.py, derived in docs/arena.md),
each against numbers: the argmax limit, the fixed-KL trend per column, the chi^2 supremum, the
bounded transforms, best-of-n, the ensembles' tail indices and the information-matched baseline."""

from __future__ import annotations

import numpy as np
import pytest

from goodhart.eval import divergences as D
from goodhart.eval import matched as Mt
from goodhart.eval.bon import best_of_n_power, kl_bound, n_for_kl
from goodhart.pipeline.report.arena_theory import column_rule, ens_index, law_class, predict
from goodhart.rewards.ensemble import combine, draw_info, draw_members
from goodhart.rewards.laws import Law

ARENA_LAWS = {
    "gaussian x1": Law("gaussian"),
    "exponential x1": Law("exponential"),
    "lognormal(sigma=1) x1": Law("lognormal", sigma=1.0),
    "student_t(df=3) x1": Law("student_t", df=3.0),
    "student_t(df=2) x1": Law("student_t", df=2.0),
    "pareto(alpha=2.5) x1": Law("pareto", alpha=2.5),
    "pareto(alpha=1.5) x1": Law("pareto", alpha=1.5),
    "levy x1": Law("levy"),
}


def _pool(law: Law, P: int, N: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(P, N))
    return v, v + law.sample((P, N), rng)


def _gain(est: dict, v: np.ndarray) -> float:
    return float(np.mean(est["v"] - v.mean(1)))


def test_law_classes_and_the_predicted_verdicts():
    heavy = {"lognormal", "student_t", "pareto", "levy"}
    for label in ARENA_LAWS:
        c = law_class(label)
        assert c.heavy == (label.split("(")[0].split(" ")[0] in heavy)
        for col in ("kl", "chi2", "hellinger", "bon", "rank", "ens_min", "ens_min(rho=0.5)", "info"):
            assert predict(label, col).verdict == ("catastrophic" if c.heavy else "no catastrophe")
        assert predict(label, "clip").verdict == "no catastrophe"  # its limit is a base quantile
        assert predict(label, "alarm-stop").verdict == "none"
        assert predict(label, "kl").fixed_kl == c.heavy and predict(label, "hellinger").fixed_kl
        for col in ("chi2", "mixed", "bon", "clip", "log_sigmoid", "rank"):
            assert predict(label, col).fixed_kl is False
    assert [law_class(x).infinite_variance for x in ARENA_LAWS] == [False] * 4 + [True, False, True, True]
    assert law_class("levy x1").index == 0.5 and law_class("lognormal(sigma=1) x1").index is None
    assert "Var(X) = inf" in column_rule("chi2") and "H^2 <= 2" in column_rule("hellinger")


def test_kl_tilt_needs_a_growing_coef_at_a_fixed_kl_iff_the_error_is_heavy():
    """E exp(X/beta) = inf for every beta (heavier than every exponential) <=> the pool's top keeps
    pulling the tilt: the beta that holds KL at 1 nat grows with N (nested pools), so the bulk's
    tilt -- where the utility is -- fades. Light laws: beta converges (Gaussian: 1, the closed form
    KL = Var(U)/(2 beta^2) with Var(U) = 2)."""
    for label, law in ARENA_LAWS.items():
        _, r = _pool(law, 8, 2**16)
        small, big = (float(Mt.coef_for_kl(r[:, :n], 1.0)[0]) for n in (2**10, 2**16))
        if law_class(label).heavy:
            assert big > 1.15 * small, (label, small, big)
        else:
            assert big == pytest.approx(small, rel=0.05), (label, small, big)
        if label == "gaussian x1":
            assert big == pytest.approx(1.0, rel=0.02)


def test_at_a_fixed_kl_the_kl_tilt_and_hellinger_lose_utility_while_chi2_and_bon_keep_it():
    """Nested pools of 16 prompts, KL = 1: t3 under the KL tilt and a Gaussian error under
    Hellinger (H^2 <= 2: no population optimum for an unbounded proxy) lose utility as N grows; the
    KL tilt under the Gaussian error, chi^2 under Pareto(1.5) (Var(X) = inf, yet its optimum at a
    fixed KL has a population limit) and best-of-n keep theirs."""
    pools = {
        k: _pool(ARENA_LAWS[k], 16, 2**16, seed=2)
        for k in ("gaussian x1", "student_t(df=3) x1", "pareto(alpha=1.5) x1")
    }

    def at(label, div, n):
        v, r = (a[:, :n] for a in pools[label])
        if div == "bon":
            return _gain(best_of_n_power(r, n_for_kl(n, 1.0), v=v), v)
        return _gain(Mt.optimum_at(r, Mt.coef_for_kl(r, 1.0, div), div, v=v), v)

    g, t3, p15 = "gaussian x1", "student_t(df=3) x1", "pareto(alpha=1.5) x1"
    assert at(t3, "kl", 2**16) < at(t3, "kl", 2**10) - 0.1
    assert at(g, "hellinger", 2**16) < at(g, "hellinger", 2**10) - 0.05
    assert at(g, "kl", 2**16) == pytest.approx(at(g, "kl", 2**10), abs=0.05)
    assert at(p15, "chi2", 2**16) == pytest.approx(at(p15, "chi2", 2**10), abs=0.1)
    assert at(p15, "bon", 2**16) == pytest.approx(at(p15, "bon", 2**10), abs=0.05)


def test_chi2_penalised_supremum_grows_with_n_iff_the_variance_is_infinite():
    """J_N = max_w mean(w r) - coef chi^2 - mean(r) on a pool: Var(X) = inf gives no finite
    supremum (mass eps on the top sample alone earns (x_max - mean r)^2 / (2 coef N) ~
    N^(2/alpha - 1)), so J_N grows with N for Pareto(1.5) (like N^(1/3): x6.3 from 2^8 to 2^16);
    for Pareto(2.5) it converges. Medians over prompts (J_N itself is heavy-tailed). Untruncated
    (a Gaussian at a large coef) J_N = Var_pool(r) / (2 coef) exactly."""
    coef = 1.0

    def J(r):
        est = D.optimum(r, coef, "chi2")
        return est["proxy"] - coef * est["divergence"] - r.mean(1)

    for label in ("pareto(alpha=1.5) x1", "pareto(alpha=2.5) x1"):
        _, r = _pool(ARENA_LAWS[label], 16, 2**16)
        j16 = J(r)
        ratio = float(np.median(j16) / np.median(J(r[:, :256])))
        if law_class(label).infinite_variance:
            assert ratio > 3, ratio
        else:
            assert ratio < 1.5, ratio
        eps_bound = np.square(r.max(1) - r.mean(1)) / (2 * coef * r.shape[1])
        assert np.all(j16 >= eps_bound - 1e-9)  # the optimum beats the mass-eps-on-the-top policy
    _, r = _pool(ARENA_LAWS["gaussian x1"], 2, 4096)
    est = D.optimum(r, 50.0, "chi2")
    assert np.all(est["dropped"] == 0)
    np.testing.assert_allclose(est["proxy"] - 50.0 * est["divergence"] - r.mean(1), r.var(1) / 100.0, rtol=1e-9)


def test_bounded_transforms_bound_the_proxy_gain_and_keep_the_argmax():
    """rank in [0, 1], log-sigmoid <= 0: their tilts' proxy gain is at most sup T - E T at every KL;
    past log N the transformed tilt is the raw proxy's argmax (the same sample), while the clip's
    limit is uniform on its tied top 1% (KL log 100)."""
    from goodhart.rewards.transform import Transform

    v, r = _pool(ARENA_LAWS["pareto(alpha=1.5) x1"], 4, 4096)
    for kind, sup in (("rank", 1.0), ("log_sigmoid", 0.0)):
        t = Transform(kind).fit(r)
        u = t(r)
        for target in (0.5, 4.0, 8.0):
            est = Mt.optimum_at(u, Mt.coef_for_kl(u, target), "kl")
            assert np.all(est["proxy"] - u.mean(1) <= sup - u.mean(1) + 1e-12)
        lim = Mt.optimum_at(u, Mt.coef_for_kl(u, 30.0), "kl", v=v)
        np.testing.assert_allclose(lim["v"], v[np.arange(4), r.argmax(1)])
    clip = Transform("clip").fit(r)(r)
    lim = Mt.optimum_at(clip, Mt.coef_for_kl(clip, 30.0), "kl", v=v)
    ties = np.sum(clip == clip.max(1, keepdims=True), 1)
    np.testing.assert_allclose(lim["kl"], np.log(4096 / ties))
    assert np.sum(ties) / clip.size == pytest.approx(0.01, abs=1e-3)  # the base's top 1% (fitted on all rows)


def test_best_of_n_at_a_matched_kl_is_its_population_policy():
    """Gaussian V and X: best-of-4 (KL log 4 - 3/4) has E[V] = E[max of 4 N(0,1)] / sqrt(2) =
    1.0294 / sqrt(2) at every pool size."""
    for N in (2**10, 2**16):
        v, r = _pool(ARENA_LAWS["gaussian x1"], 2**20 // N, N, seed=3)
        n = n_for_kl(N, kl_bound(4))
        assert n == pytest.approx(4.0, rel=0.02)
        assert _gain(best_of_n_power(r, n, v=v), v) == pytest.approx(1.0294 / np.sqrt(2), abs=0.01)


def test_the_argmax_keeps_utility_iff_the_error_is_light():
    """E[V at the pool argmax of V + X]: rises with N for a Gaussian X (to E[max of N N(0, 2)] / 2),
    levels off near Var(V) = 1 for an exponential X (the boundary), falls toward 0 for heavy X."""

    def argmax_gain(law, N, seed=4):
        v, r = _pool(law, 2**20 // N, N, seed)
        return float(np.mean(v[np.arange(v.shape[0]), r.argmax(1)]))

    g = [argmax_gain(ARENA_LAWS["gaussian x1"], n) for n in (2**8, 2**13)]
    assert g[1] > g[0] + 0.3
    e = argmax_gain(ARENA_LAWS["exponential x1"], 2**13)
    assert e == pytest.approx(1.0, abs=0.1)
    for label in ("student_t(df=3) x1", "pareto(alpha=1.5) x1"):
        h = [argmax_gain(ARENA_LAWS[label], n) for n in (2**5, 2**13)]
        assert h[1] < h[0] - 0.1 and h[1] < 0.3, (label, h)


def _hill(x: np.ndarray, k: int) -> float:
    s = np.sort(x.ravel())[::-1]
    return 1.0 / np.mean(np.log(s[:k] / s[k]))


def test_ensemble_tail_indices():
    """k = 4 members: the combination exceeds x only when m of them do, so its index is m alpha:
    min m = 4; mean m = 1 (one member at x lifts it x/4); median m = 2 (it is at most the 2nd
    largest, (x, x, 0, 0) gives x/2); UWO = mean - std m = 3: it is at most the 3rd largest member
    (with d = mean - x_(2) > 0, the two lowest deviations are >= d each and the two highest sum to
    >= 2d, so 4 var >= 4 d^2), one large member x gives x(1 - sqrt 3)/4 < 0 (-183,013 at 1e6), two
    give 0, three equal give x(3 - sqrt 3)/4. A shared component (rho 0.5) keeps alpha."""
    alpha = 1.5
    assert [ens_index(k, alpha) for k in ("ens_min", "ens_mean", "ens_median", "ens_uwo")] == [6.0, 1.5, 3.0, 4.5]
    big = 1e6
    one = combine(np.array([big, 0, 0, 0])[:, None], "uwo")[0]
    assert one == pytest.approx(big * (1 - np.sqrt(3)) / 4) and round(one) == -183013
    assert combine(np.array([big, big, 0, 0])[:, None], "uwo")[0] == pytest.approx(0, abs=1e-6)
    assert combine(np.array([big, big, big, 0])[:, None], "uwo")[0] == pytest.approx(big * (3 - np.sqrt(3)) / 4)
    assert combine(np.array([big, big, 0, 0])[:, None], "median")[0] == big / 2
    rng = np.random.default_rng(9)
    m = rng.standard_cauchy(size=(4, 200_000)) * rng.choice([1.0, 10.0, 100.0], size=200_000)
    srt = np.sort(m, axis=0)  # ascending: row 2 is the 2nd largest, row 1 the 3rd largest
    assert np.all(combine(m, "uwo") <= srt[1] + 1e-9)
    assert np.all(combine(m, "median") <= srt[2])
    law = Law("pareto", alpha=alpha)
    x = draw_members(Law("gaussian"), law, 4, 2**17, seed=5, k=4)
    err = x["members"] - x["utility"][None]
    assert _hill(combine(err, "median"), 300) == pytest.approx(2 * alpha, rel=0.25)
    assert _hill(combine(err, "mean"), 300) == pytest.approx(alpha, rel=0.25)
    shared = draw_members(Law("gaussian"), law, 4, 2**17, seed=5, k=4, rho=0.5)
    assert _hill((shared["members"] - shared["utility"][None]).min(0), 300) == pytest.approx(alpha, rel=0.25)
    g = draw_members(Law("gaussian"), Law("gaussian"), 4, 2**16, seed=6, k=4, rho=0.5)
    e = g["members"] - g["utility"][None]
    assert np.corrcoef(e[0].ravel(), e[1].ravel())[0, 1] == pytest.approx(0.5, abs=0.02)


def test_information_matched_single_proxy():
    """combine: info is one proxy V + sqrt(rho) S + sqrt((1 - rho)/k) X_0: exactly member 0's
    independent error scaled by 1/sqrt(k) at rho = 0; for a Gaussian error it has the law of the k
    members' mean (variance rho + (1 - rho)/k)."""
    from goodhart.rewards.distributional import draw

    one = draw(Law("gaussian"), Law("pareto", alpha=1.5), 2, 1000, 7)
    info = draw_info(Law("gaussian"), Law("pareto", alpha=1.5), 2, 1000, 7, k=4)
    np.testing.assert_allclose(info["error"], one["error"] / 2)
    np.testing.assert_array_equal(info["utility"], one["utility"])
    for rho in (0.0, 0.5):
        i = draw_info(Law("gaussian"), Law("gaussian"), 4, 2**16, 8, k=4, rho=rho)["error"]
        m = draw_members(Law("gaussian"), Law("gaussian"), 4, 2**16, 8, k=4, rho=rho)
        mean_err = (m["members"] - m["utility"][None]).mean(0)
        assert np.var(i) == pytest.approx(rho + (1 - rho) / 4, rel=0.03)
        assert np.var(mean_err) == pytest.approx(rho + (1 - rho) / 4, rel=0.03)
