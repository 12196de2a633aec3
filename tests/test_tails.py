"""Tail diagnostics against laws whose tails are known (eval/tails.py)."""

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from goodhart.eval.tails import (
    exp_qq_slope,
    exp_qq_trend,
    gpd_fit,
    hill,
    mean_excess,
    moment_estimator,
    pickands,
    power_tail_trend,
    resolved_index,
    robust_scale,
    tail_verdict,
)

N = 30_000
SEEDS = range(5)
Sampler = Callable[[np.random.Generator], np.ndarray]

LIGHT: dict[str, Sampler] = {
    "normal": lambda r: r.normal(size=N),
    "uniform": lambda r: r.uniform(size=N),
}
# Flat b(u): the exponential itself and (at this n) the Gumbel. Their statistics at 30,000
# draws are those of a Student-t(10) (issue 19): a light call on them excludes power tails up
# to an index well below 10 (issue 29), and says which.
BOUNDARY: dict[str, Sampler] = {
    "exponential": lambda r: r.exponential(size=N),
    "gumbel": lambda r: r.gumbel(size=N),
}
HEAVY: dict[str, Sampler] = {
    "pareto(1.5)": lambda r: r.pareto(1.5, size=N) + 1,
    "student_t(2)": lambda r: r.standard_t(2, size=N),
    "lognormal(1.5)": lambda r: r.lognormal(0.0, 1.5, size=N),
    "levy": lambda r: stats.levy.rvs(size=N, random_state=r),
}


def _verdicts(sample: Sampler) -> list[str]:
    return [tail_verdict(sample(np.random.default_rng(100 + s)), seed=s).verdict for s in SEEDS]


# ---------------------------------------------------------------- verdict


@pytest.mark.parametrize("name", LIGHT)
def test_verdict_light_for_light_laws_every_seed(name: str) -> None:
    assert _verdicts(LIGHT[name]) == ["light"] * len(SEEDS)


@pytest.mark.parametrize("name", HEAVY)
def test_verdict_heavy_for_heavy_laws_every_seed(name: str) -> None:
    assert _verdicts(HEAVY[name]) == ["heavy"] * len(SEEDS)


@pytest.mark.parametrize("name", BOUNDARY)
def test_exponential_like_tails_are_light_up_to_the_index_they_exclude(name: str) -> None:
    reps = [tail_verdict(BOUNDARY[name](np.random.default_rng(100 + s)), seed=s) for s in SEEDS]
    assert [r.verdict for r in reps] == ["light"] * len(SEEDS)
    for r in reps:
        assert 3 <= r.excluded < 10  # never the index of a t(10), which looks the same
        assert f"LIGHT (no power tail of index <= {r.excluded:.3g})" in r.table()


def test_power_tail_trend_falls_with_the_index() -> None:
    ks = np.unique(np.geomspace(3000, 100, 15).round().astype(np.int64))
    trend = [power_tail_trend(df, N, ks) for df in (2, 3, 5, 8, 12, 30, 1000)]
    assert all(a > b for a, b in zip(trend, trend[1:])), trend
    assert trend[0] > 0.4 and trend[-1] < -0.1  # t(2) grows; t(1000) falls like a normal


@pytest.mark.parametrize("df", [3, 5, 8, 10, 11])
def test_a_student_t_is_never_light_below_the_index_it_prints(df: int) -> None:
    # issue 29: t(20) at 300,000 and t(30) at 30,000 read LIGHT with no index; a light call now
    # names k and a t(df) sample is light only with k < df (the exclusion is a one-sided 0.1% claim)
    for s in range(4):
        rep = tail_verdict(np.random.default_rng(300 + 10 * df + s).standard_t(df, size=N), seed=s)
        assert rep.verdict != "light" or rep.excluded < df, rep.table()
        if rep.verdict == "light":
            assert f"no power tail of index <= {rep.excluded:.3g}" in rep.table()


def test_student_t10_at_300000_draws_is_at_most_light_below_10() -> None:
    # The issue-19 case: LIGHT at 30,000, 300,000 and 1,000,000 draws under an older rule, whose
    # thresholds stopped at the 0.995 quantile, where t(10)'s b(u) is still falling.
    rep = tail_verdict(np.random.default_rng(5).standard_t(10, size=300_000), seed=1)
    assert rep.verdict != "light" or rep.excluded < 10, rep.table()
    assert rep.qq_trend.n_exceed.min() == 100  # thresholds reach the top 100 values


def test_resolved_index_is_where_student_t_turns_inside_the_thresholds() -> None:
    for n in (30_000, 300_000):
        df = resolved_index(n)
        assert np.sqrt(df) == pytest.approx(stats.t(df).isf(100 / n), rel=1e-3)
    assert 10 < resolved_index(30_000) < resolved_index(300_000) < resolved_index(3_000_000)
    assert "resolved up to index ~11.1" in " ".join(tail_verdict(np.random.default_rng(0).normal(size=N)).reasons)


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (lambda r: r.normal(-5.0, 0.01, size=N), "light"),
        (lambda r: r.exponential(size=N) - 100.0, "light"),  # every value negative
        (lambda r: -r.exponential(size=N), "light"),  # bounded above by 0
        (lambda r: 1e3 * r.standard_t(2, size=N) - 1e5, "heavy"),  # every value negative
        (lambda r: 1e-6 * r.lognormal(0.0, 1.5, size=N), "heavy"),
    ],
)
def test_verdict_survives_shift_scale_and_negative_values(sample: Sampler, expected: str) -> None:
    assert _verdicts(sample) == [expected] * len(SEEDS)


def test_verdict_statistics_are_affine_invariant() -> None:
    x = np.random.default_rng(7).lognormal(0.0, 1.0, size=N)
    a, b = tail_verdict(x, seed=3), tail_verdict(250.0 * x - 1e4, seed=3)
    assert a.verdict == b.verdict
    assert a.qq_trend.slope == pytest.approx(b.qq_trend.slope, rel=1e-6)
    assert a.qq_trend.se == pytest.approx(b.qq_trend.se, rel=1e-6)
    assert a.gpd.xi == pytest.approx(b.gpd.xi, abs=1e-3)
    assert a.gpd.sigma_over_scale == pytest.approx(b.gpd.sigma_over_scale, rel=1e-3)
    assert a.pickands.value == pytest.approx(b.pickands.value, rel=1e-6)


def test_small_sample_exponential_is_not_called_heavy() -> None:
    rng = np.random.default_rng(11)
    verdicts = {tail_verdict(rng.exponential(size=2_000), seed=s).verdict for s in SEEDS}
    assert "heavy" not in verdicts


def test_report_prints_verdict_rule_and_numbers() -> None:
    report = tail_verdict(np.random.default_rng(0).standard_t(2, size=N))
    text = str(report)
    assert text == report.table()
    assert "HEAVY" in text and "rule: heavy if" in text and "because:" in text
    assert f"{report.gpd.xi:+9.4f}" in text
    assert f"{report.qq_trend.slope:+9.4f}" in text


@pytest.mark.parametrize(
    "bad",
    [np.r_[np.ones(1000), np.nan], np.ones(1000), np.ones((100, 10)), np.arange(50.0)],
)
def test_tail_verdict_rejects_unusable_samples(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        tail_verdict(bad)


# ---------------------------------------------------------------- Hill, Pickands, moment


def test_hill_recovers_pareto_tail_index() -> None:
    alpha, gammas = 2.0, []
    for seed in SEEDS:
        x = np.random.default_rng(seed).pareto(alpha, size=20_000) + 1
        est = hill(x).at_k_star
        lo, hi = est.interval(0.99)
        assert lo <= 1 / alpha <= hi
        gammas.append(est.value)
    assert np.mean(gammas) == pytest.approx(1 / alpha, abs=0.05)


def test_hill_default_k_range_and_invariance() -> None:
    x = np.random.default_rng(1).standard_t(3, size=10_000)
    h = hill(x)
    assert (h.ks[0], h.ks[-1]) == (int(np.ceil(10_000**0.1)), 100)
    assert h.ks[0] <= h.k_star <= h.ks[-1]
    np.testing.assert_allclose(hill(3.0 * x - 50.0).gamma, h.gamma, rtol=1e-9)
    np.testing.assert_allclose(h.se, h.gamma / np.sqrt(h.ks))


def test_pickands_and_moment_estimators() -> None:
    rng = np.random.default_rng(2)
    pareto = rng.pareto(2.0, size=N) + 1
    for est in (pickands(pareto, 1000), moment_estimator(pareto, 1000)):
        assert abs(est.value - 0.5) < 3 * est.se, est
    uniform = rng.uniform(size=N)
    assert moment_estimator(uniform, 1500).interval()[1] < 0
    assert pickands(uniform, 1500).interval()[1] < 0
    expo = rng.exponential(size=N)
    assert abs(pickands(expo, 375).value) < 3 * pickands(expo, 375).se
    with pytest.raises(ValueError):
        pickands(expo, N)


# ---------------------------------------------------------------- GPD


def test_gpd_shape_sign_by_domain() -> None:
    rng = np.random.default_rng(3)
    expo = gpd_fit(rng.exponential(size=N), n_boot=100)
    assert expo.xi_interval[0] <= 0 <= expo.xi_interval[1] or abs(expo.xi) < 0.1
    assert gpd_fit(rng.standard_t(3, size=N), n_boot=100).xi_interval[0] > 0
    assert gpd_fit(rng.uniform(size=N), n_boot=100).xi_interval[1] < 0


def test_gpd_fit_matches_scipy_genpareto_likelihood() -> None:
    x = np.random.default_rng(4).standard_t(4, size=8_000)
    fit = gpd_fit(x, threshold_quantile=0.9, n_boot=0)
    y = x[x > fit.threshold] - fit.threshold
    c, _, scale = stats.genpareto.fit(y, floc=0)
    assert fit.xi == pytest.approx(c, abs=5e-3)
    assert fit.sigma == pytest.approx(scale, rel=5e-3)
    assert fit.loglik >= stats.genpareto.logpdf(y, c, scale=scale).sum() - 1e-3


def test_gpd_bootstrap_interval_is_seeded_and_contains_estimate() -> None:
    x = np.random.default_rng(5).lognormal(size=5_000)
    a, b = gpd_fit(x, n_boot=50, seed=1), gpd_fit(x, n_boot=50, seed=1)
    assert a.xi_interval == b.xi_interval
    assert a.xi_interval[0] < a.xi < a.xi_interval[1]


# ---------------------------------------------------------------- mean excess, exp Q-Q


def test_mean_excess_flat_for_exponential_linear_for_pareto() -> None:
    rng = np.random.default_rng(6)
    expo = 2.0 * rng.exponential(size=N)
    me = mean_excess(expo, np.quantile(expo, [0.5, 0.8, 0.9, 0.95]))
    np.testing.assert_allclose(me.e, 2.0, rtol=0.1)  # memoryless: e(u) = scale
    assert abs(me.slope) < 0.1
    pareto = rng.pareto(4.0, size=N) + 1  # e(u) = u / (alpha - 1)
    assert mean_excess(pareto, np.quantile(pareto, [0.5, 0.7, 0.9])).slope == pytest.approx(1 / 3, abs=0.1)


def test_exp_qq_slope_is_scale_of_exponential_in_robust_units() -> None:
    x = np.random.default_rng(8).exponential(size=N)
    expected = 1.0 / (np.log(3.0) / 1.3489795)  # exponential scale / (IQR / 1.349)
    assert exp_qq_slope(x) == pytest.approx(expected, rel=0.05)
    assert exp_qq_slope(5.0 * x + 3.0) == pytest.approx(exp_qq_slope(x), rel=1e-9)
    assert robust_scale(5.0 * x) == pytest.approx(5.0 * robust_scale(x))


def test_exp_qq_trend_falls_flat_grows() -> None:
    rng = np.random.default_rng(9)
    assert exp_qq_trend(rng.normal(size=N), n_boot=50).interval[1] < 0
    flat = exp_qq_trend(rng.exponential(size=N), n_boot=50, level=0.99)
    assert flat.interval[0] < 0 < flat.interval[1]
    assert exp_qq_trend(rng.lognormal(0.0, 1.0, size=N), n_boot=50).interval[0] > 0


# ---------------------------------------------------------------- the reference, exactly as scipy.stats makes it
# (`goodhart tails FILE` imports no scipy.stats: its quantiles come from a table or scipy.special,
# its Student-t grid is simulated for every df at once and kept by a memo; the printed numbers
# must be the ones the scipy.stats version printed, bit for bit)


def test_the_normal_quantile_table_is_scipys_bit_for_bit() -> None:
    from scipy.special import ndtri

    from goodhart.eval.tails import _NDTRI, _norm_isf, _norm_ppf

    for p, z in _NDTRI.items():
        assert z == ndtri(p) == stats.norm.ppf(p), p
        assert _norm_isf(p) == stats.norm.isf(p), p
    for level in (0.9, 0.95, 0.99, 0.999):  # what the verdicts ask for: all in the table
        assert 0.5 + level / 2 in _NDTRI
    assert _norm_ppf(0.123) == stats.norm.ppf(0.123)  # off the table: computed


def test_student_t_quantiles_are_scipy_stats_bit_for_bit() -> None:
    from goodhart.eval.tails import _t_isf

    rng = np.random.default_rng(3)
    q = np.sort(rng.uniform(1e-7, 0.3, 400))
    for df in (1.0, 1.37, 2.0, 4.344075176014229, 11.1, 300.0):
        assert np.array_equal(_t_isf(df, q), stats.t(df).isf(q)), df
    dfs = np.array([1.0, 3.3, 17.0])
    assert np.array_equal(_t_isf(dfs[:, None], q[None]), np.stack([stats.t(d).isf(q) for d in dfs]))


def _power_tail_trend_one_df(df: float, n: int, ks: np.ndarray) -> tuple[float, float]:
    """power_tail_trend(df, n, ks, spread=True) as it was written first: one df, scipy.stats."""
    from goodhart.eval.tails import _qq_positions, _qq_slopes, _theil_sen

    m = int(np.max(ks)) + 1
    rng = np.random.default_rng(0)
    gam = np.cumsum(rng.exponential(size=(48, m)), axis=1)
    total = gam[:, -1:] + rng.gamma(n + 1 - m, size=(48, 1))
    need = np.unique(np.concatenate([ks, *(_qq_positions(int(k)) for k in ks)]))
    top = np.full((48, m), np.nan)
    top[:, need] = stats.t(df).isf(gam[:, need] / total)
    slopes = _theil_sen(*_qq_slopes(top, ks))
    return float(np.mean(slopes)), float(np.std(slopes, ddof=1))


def test_the_power_grid_is_each_df_simulated_alone_bit_for_bit() -> None:
    from goodhart.eval.tails import _power_grid

    n = 1500
    ks = np.unique(np.geomspace(150, 75, 15).round().astype(np.int64))
    cap = resolved_index(n, int(ks[0]))
    dfs, m, sd = _power_grid(n, tuple(int(k) for k in ks), cap)
    assert dfs[0] == 1.0 and dfs[-1] == cap  # k = 0 and k = cap read the grid's own rows
    for i in (0, 7, 19, 32):
        assert (m[i], sd[i]) == _power_tail_trend_one_df(float(dfs[i]), n, ks), i
    assert power_tail_trend(3.7, n, ks, spread=True) == _power_tail_trend_one_df(3.7, n, ks)


def test_the_verdict_through_a_memo_is_the_same_and_simulates_once() -> None:
    """tail_verdict(memo=...) keeps the Student-t reference (the pipeline passes its disk cache):
    the same table, and a second sample of the same size computes nothing new."""
    store: dict = {}
    calls: list[str] = []

    def memo(fn, **kw):
        key = (fn.__qualname__, tuple(sorted(kw.items())))
        if key not in store:
            calls.append(fn.__qualname__)
            store[key] = fn(**kw)
        return store[key]

    rng = np.random.default_rng(11)
    x = rng.exponential(size=4000)  # k = 1.29: between the grid's points, its own simulation
    assert tail_verdict(x, memo=memo).table() == tail_verdict(x).table()
    assert sorted(calls) == ["_power_grid", "power_tail_trend", "resolved_index"]
    calls.clear()
    heavy = rng.standard_t(2, 4000)  # k = 0: the grid's first row
    assert tail_verdict(heavy, memo=memo).table() == tail_verdict(heavy).table()
    assert calls == []
