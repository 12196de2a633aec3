"""The gold-free Goodhart alarm (eval/alarm.py): the bound in closed form, quiet on light
tails, loud on heavy ones, and blind to utility."""

import math

import numpy as np
import pytest
from scipy import stats

from goodhart.eval import metrics as M
from goodhart.eval.alarm import (
    AlarmRule,
    BaseStats,
    alarm,
    bon_alarm,
    bulk_sigma,
    decide,
    dv_bound,
    empirical_cgf,
    gaussian_cgf,
    significant,
    tilt_alarm,
)
from goodhart.eval.bon import best_of_n, kl_bound
from goodhart.eval.tilt import tilt
from goodhart.rewards.distributional import draw
from goodhart.rewards.laws import Law


@pytest.mark.parametrize("sigma,k", [(1.0, 0.01), (1.0, 0.5), (2.5, 1.0), (0.3, 7.0), (10.0, 20.0)])
def test_dv_bound_of_a_gaussian_is_sigma_sqrt_2k(sigma, k):
    # inf_lambda (k + lambda^2 sigma^2 / 2) / lambda = sigma sqrt(2k), at lambda = sqrt(2k) / sigma.
    assert dv_bound(k, gaussian_cgf(sigma)) == pytest.approx(sigma * math.sqrt(2 * k), rel=1e-7)


def test_dv_bound_matches_brute_force_for_a_skewed_cgf():
    # Exponential(1) centred: CGF -log(1 - lambda) - lambda on (0, 1); infinite beyond.
    def cgf(lam):
        return -math.log1p(-lam) - lam if lam < 1 else math.inf

    for k in (0.1, 1.0, 5.0):
        lams = np.linspace(1e-4, 1 - 1e-9, 400_001)
        brute = np.min((k + (-np.log1p(-lams) - lams)) / lams)
        assert dv_bound(k, cgf) == pytest.approx(brute, rel=1e-6)


def test_the_exact_gaussian_tilt_attains_the_bound_and_the_empirical_cgf_agrees():
    # pi_beta of N(0, s^2): gain s^2/beta, KL s^2/(2 beta^2) -> gain = s sqrt(2 KL): DV is tight.
    s, beta = 1.7, 1.3
    gain, kl = s**2 / beta, s**2 / (2 * beta**2)
    assert dv_bound(kl, gaussian_cgf(s)) == pytest.approx(gain, rel=1e-7)
    x = np.random.default_rng(0).normal(0, s, 400_000)
    assert dv_bound(kl, empirical_cgf(x)) == pytest.approx(gain, rel=0.02)


def test_bulk_sigma_is_exact_for_gaussians_and_ignores_a_far_tail():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2.0, 200_000)
    assert bulk_sigma(x) == pytest.approx(2.0, rel=0.01)
    spiked = x.copy()
    spiked[:500] = 1e9  # 0.25% of the samples are enormous
    assert bulk_sigma(spiked) == pytest.approx(2.0, rel=0.02)
    assert np.std(spiked) > 1e6  # a variance estimate would be ruined


def _sweep(error: Law, seed: int = 0, P: int = 8, N: int = 4096):
    """(label, alarm, utility gain) over a tilt and a best-of-n sweep on one distributional pool."""
    a = draw(Law("gaussian"), error, P, N, seed)
    out = []
    base = BaseStats.from_pool(a["proxy"], n_null=AlarmRule().n_null)  # one null along the curve
    for beta in (10, 3, 1, 0.5, 0.3):
        est = tilt(a["proxy"], beta)
        out.append((f"tilt {beta}", tilt_alarm(a["proxy"], beta, float(est["kl"].mean()), base=base)))
    for n in (4, 16, 64, 256, 1024):
        out.append((f"bon {n}", bon_alarm(a["proxy"], n, float(kl_bound(n)), base=base)))
    return out


@pytest.mark.parametrize("error", [Law("gaussian"), Law("gaussian", scale=3.0), Law("uniform", scale=4.0)])
def test_a_light_tailed_sweep_stays_quiet(error):
    for seed in (0, 1):
        for label, al in _sweep(error, seed):
            assert al.level == "quiet", (error, seed, label, al)
            assert al.dv_ratio < 1.1, (label, al)  # nothing beats the bulk's own bound


@pytest.mark.parametrize("error", [Law("student_t", df=2), Law("lognormal", sigma=1.5), Law("pareto", alpha=1.2)])
def test_a_heavy_tailed_sweep_alarms(error):
    res = _sweep(error)
    far = [(lab, al) for lab, al in res if al.kl >= 3.0]
    assert far and all(al.level == "alarm" for _, al in far), far
    assert max(al.dv_ratio for _, al in res) > 5


def test_the_alarm_never_reads_utility():
    """The real tilt and best-of-n optimizers on a pool whose utility (and error) are NaN give
    the same alarm as on the real pool."""
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.base.pool import Pool
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.optimizers import bon, tilt

    a = draw(Law("gaussian"), Law("student_t", df=2), 6, 512, 3)
    real = Pool(None, None, a["proxy"], a["utility"], a["error"], "real")
    blind = Pool(
        None, None, a["proxy"].copy(), np.full_like(a["utility"], np.nan), np.full_like(a["error"], np.nan), "x"
    )
    keys = [M.ALARM_SCORE, M.ALARM_LEVEL, M.ALARM_DV_RATIO, M.ALARM_TOP_SHARE, M.ALARM_BEYOND_MAX, M.ALARM_SIGMA]
    for algo, knob, run in (("tilt", "algo.kl.coef=0.5", tilt.run), ("bon", "algo.n=64", bon.run)):
        cfg = load_config(None, ["reward=distributional", f"algo={algo}", knob, "eval.bootstrap=0"])
        rows = []
        for pool in (real, blind):
            ctx = PointContext(cfg, None, progress=False)  # type: ignore[arg-type]
            ctx._pool = pool
            rows.append(run(ctx).row)
        assert np.isnan(rows[1][M.UTILITY])  # the utility really was removed
        for k in keys:
            assert rows[0][k] == rows[1][k], (algo, k)
        assert rows[0][M.ALARM_LEVEL] == "alarm"


def test_noise_stays_quiet_and_levels_follow_the_score():
    rule = AlarmRule(alpha=0.05, share=0.8)
    here = {"local_p": 0.01}  # the local tail test rejects where the point buys its gain
    assert decide(0.01, 1.0, 0.001, 0.99, rule, **here) == (0.0, "quiet")  # gain within the bulk's noise
    assert decide(1.0, 1.0, 0.2, 0.99, rule, local_p=0.2)[1] == "quiet"  # nothing rejects the light null
    assert decide(1.0, 1.0, 0.2, 0.5, rule, **here)[1] == "watch"  # heavy there, but the bulk carries the gain
    assert decide(1.0, 1.0, 0.2, 0.9, rule, **here)[1] == "alarm"
    assert decide(1.0, 1.0, 0.2, 0.9, AlarmRule(alpha=0.005), **here)[1] == "quiet"  # alpha is the level
    assert decide(1.0, 1.0, 0.2, 0.4, rule, **here)[0] == pytest.approx(0.5)  # score = tail_share / share
    assert decide(1.0, 1.0, 0.2, 0.81, AlarmRule(), **here)[1] == "alarm"  # the default share, 0.8 (dev halves)
    assert decide(1.0, 1.0, 0.2, 0.79, AlarmRule(), **here)[1] == "watch"
    assert decide(1.0, 1.0, 0.2, math.nan, rule, **here)[1] == "watch"  # no share measured: never material


def test_the_curve_level_tests_join_at_half_the_level_each_and_say_watch_at_most():
    rule = AlarmRule(alpha=0.05, share=0.8)
    # the gain test alone (a policy given as samples: no tail p-value): p < alpha
    assert significant(0.03, math.nan, rule) and not significant(0.05, math.nan, rule)
    # both tests: Bonferroni, each at alpha / 2, so the union is a level-alpha test
    assert not significant(0.03, 0.5, rule) and significant(0.02, 0.5, rule)
    assert significant(0.9, 0.02, rule) and not significant(0.9, 0.03, rule)
    assert not significant(math.nan, math.nan, rule)
    # Rule 5: the curve-level tests say `watch` at most, however small their p-values and however
    # much of the gain sits in the tail. The pool's tail test is one number per pool (one chance
    # rejection would reach every knob of the curve) and the gain test compares the tail with an
    # exponential of the bulk's scale; `alarm` needs the point's own local tail test.
    assert decide(1.0, 1.0, 0.9, 0.99, rule, tail_p=0.005)[1] == "watch"
    assert decide(1.0, 1.0, 0.001, 0.99, rule, tail_p=0.005)[1] == "watch"
    assert decide(1.0, 1.0, 0.9, 0.99, rule, tail_p=0.005, local_p=0.01)[1] == "alarm"
    assert decide(1.0, 1.0, 0.9, 0.7, rule, tail_p=0.005, local_p=0.01)[1] == "watch"
    assert decide(1.0, 1.0, 0.03, 0.9, rule, tail_p=0.5)[1] == "quiet"  # 0.03 >= alpha / 2


def test_the_pool_tail_test_is_calibrated_on_exponential_pools_and_sees_lognormal_beside_a_gaussian():
    # An exponential pool is its own null: its mean-excess slope's p-value is below 0.1 in about
    # 10% of pools (60 pools: binomial(60, 0.1) in [1, 12] w.p. > 0.99); a Gaussian is lighter.
    def rate(draw, seeds, level=0.1):
        return float(
            np.mean([BaseStats.from_pool(draw(np.random.default_rng(s)), n_null=99).tail[1] < level for s in seeds])
        )

    assert 1 / 60 <= rate(lambda r: r.exponential(1.0, (4, 1024)), range(60)) <= 12 / 60
    assert rate(lambda r: r.normal(size=(4, 1024)), range(20)) == 0.0
    # the case the gain test misses at moderate n: a small lognormal error beside a Gaussian
    # utility. The pool's tail shape rejects the null in every pool; best-of-256's gain often
    # does not (the null's exponential, of the bulk's scale, beats a Gaussian bulk there); the
    # local test, which reads the tail where best-of-256 buys its gain, rejects: alarm.
    rule = AlarmRule(n_null=99)
    misses = 0
    for seed in range(3):
        r = np.random.default_rng(seed)
        b = r.normal(size=(16, 4096)) + 0.15 * r.lognormal(0.0, 1.1, (16, 4096))
        a = bon_alarm(b, 256, float(kl_bound(256)), rule)
        assert a.tail_p < rule.alpha / 2 and a.tail_share >= rule.share and a.level == "alarm", a
        assert a.local_p < rule.alpha and a.local_ratio > 1.5, a
        misses += a.p_value >= rule.alpha / 2
    assert misses >= 1


def test_the_local_tail_test_is_exact_on_exponential_tails_at_any_scale():
    """local_tail: an exponential tail's normalized top spacings are i.i.d. exponential (Renyi), so its
    ratio is F(2 n_up, 2 n_low) under the null whatever the scale: p-values uniform on exponential
    pools of any scale and policy depth; a Gaussian tail (hazard rising) sits below 1, a Pareto
    tail (hazard falling) far above it."""
    from goodhart.eval.alarm import local_tail

    rng = np.random.default_rng(0)

    def reading(base: np.ndarray, m: int):
        desc = -np.sort(-base)
        return local_tail(desc, desc[:m], np.full(m, 1.0 / m))  # a policy on the base's top m

    ps = np.array(
        [reading(rng.exponential(10 ** rng.uniform(-2, 3), 4096), int(rng.choice([8, 64, 256])))[1] for _ in range(400)]
    )
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert 0.02 <= np.mean(ps < 0.05) <= 0.085  # binomial(400, 0.05): within 3 sd
    gauss = [reading(rng.normal(size=4096), 64) for _ in range(50)]
    assert np.mean([r for r, _, _ in gauss]) < 0.9 and max(p for _, p, _ in gauss) > 0.5
    assert sum(p < 0.05 for _, p, _ in gauss) <= 2
    pareto = [reading(rng.pareto(2.0, 4096), 64) for _ in range(20)]
    assert all(r > 1.3 and p < 0.01 for r, p, _ in pareto), pareto
    # depth: the share of the pool above the median of where the gain is bought (mass x reward
    # above the base median: within the policy's top 64 of 4096, its larger rewards weigh more)
    assert 4 / 4096 < reading(rng.exponential(size=4096), 64)[2] < 32 / 4096
    # a discrete reward: its distinct values (what BaseStats.desc holds) are few, and the window
    # reaches past them (nothing to read); on a finer lattice the top spacings are even, never heavy
    tied = np.unique(np.round(rng.exponential(size=4096)))[::-1]
    assert math.isnan(local_tail(tied, tied[:1], np.ones(1))[1])
    fine = np.unique(np.round(100 * rng.exponential(size=65536)) / 100)[::-1]
    assert local_tail(fine, fine[:64], np.full(64, 1 / 64))[1] > 0.5


def test_repeated_rewards_count_once_in_the_local_test():
    """A text pool repeats completions, and a repeated text repeats its reward: ties a continuous
    law never has (the demo's pools: 18% repeats, a quarter of the top spacings zero). The local test
    reads the distinct rewards (BaseStats.desc), whose law is the continuous one: on exponential
    pools drawn with replacement (37% repeats) it stays at its level, and a Pareto error with repeats
    alarms where the gain is in its tail."""
    rule = AlarmRule(n_null=0)

    def repeated(draw, seed):
        r = np.random.default_rng(seed)
        x = draw(r)
        return np.take_along_axis(x, r.integers(0, x.shape[1], x.shape), 1)

    b = repeated(lambda r: r.exponential(size=(8, 2048)), 0)
    base = BaseStats.from_pool(b)
    assert base.desc.size < b.size * 0.7 and np.all(np.diff(base.desc) < 0)  # distinct, largest first
    ps = [
        bon_alarm(x, 64, float(kl_bound(64)), rule, BaseStats.from_pool(x)).local_p
        for x in (repeated(lambda r: r.exponential(size=(8, 2048)), s) for s in range(40))
    ]
    assert sum(p < rule.alpha for p in ps) <= 6  # binomial(40, 0.05): 6 or more w.p. 0.014
    heavy = repeated(lambda r: r.normal(size=(8, 2048)) + 0.3 * r.pareto(1.5, (8, 2048)), 1)
    a = bon_alarm(heavy, 32, float(kl_bound(32)), rule, BaseStats.from_pool(heavy))
    assert a.local_p < 1e-6 and a.level == "alarm", a


def test_one_chance_rejection_of_the_base_pool_does_not_alarm_a_light_curve():
    """A light error (exponential) beside a Gaussian utility; pools whose tail-shape test rejects by
    chance (tail_p 0.015 < alpha / 2: about 2.5% of such pools; seeds 66 and 123 of 200 searched).
    Under rule 4 that one number, with the tail share that best-of-n reaches from n = 16 on, put
    best-of-16 to -512 at `alarm`; under rule 5 the pool test says `watch` and only the knobs whose
    own depth holds the chance excess (the local test) read `alarm`."""
    rule = AlarmRule()
    for seed in (66, 123):
        r = np.random.default_rng(seed)
        b = r.normal(size=(8, 2048)) + r.exponential(1.0, (8, 2048))
        base = BaseStats.for_rule(b, rule)
        assert base.tail[1] < rule.alpha / 2  # the chance rejection
        reads = [bon_alarm(b, n, float(kl_bound(n)), rule, base) for n in (2, 4, 8, 16, 32, 64, 128, 256, 512)]
        rule4 = sum(significant(a.p_value, a.tail_p, rule) and a.tail_share >= rule.share for a in reads)
        assert rule4 >= 6, rule4
        alarms = [a for a in reads if a.level == "alarm"]
        assert len(alarms) <= 2 and all(a.local_p < rule.alpha for a in alarms), [a.level for a in reads]
        assert sum(a.level == "watch" for a in reads) >= 7


def test_weighted_and_sampled_policies_agree_and_beyond_max_sees_new_rewards():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(4, 20_000))
    bs = BaseStats.from_pool(base)
    # Best-of-4 given as weights on the pool vs. actually drawn: same gain, same ratio (roughly).
    w = bon_alarm(base, 4, float(kl_bound(4)))
    drawn = np.max(rng.normal(size=(4, 5000, 4)), axis=2)
    d = alarm(drawn, float(kl_bound(4)), bs)
    assert d.gain == pytest.approx(w.gain, abs=0.03) and d.dv_ratio == pytest.approx(w.dv_ratio, abs=0.03)
    assert w.gain == pytest.approx(float(best_of_n(base, 4)["proxy"].mean() - base.mean()), rel=1e-9)
    assert d.beyond_max == 0.0
    hacked = drawn.copy()
    hacked[:, :500] = 50.0  # 10% of the policy's samples far above anything the base produced
    h = alarm(hacked, 1.0, bs)
    assert h.beyond_max == pytest.approx(0.1, abs=0.005)  # less the bulk's own share at KL 1
    # More gain than a light tail gives at KL 1 (the gain test: `watch`), but where it is bought the
    # base pool shows a Gaussian tail: nothing says that tail is heavier than exponential. Over a base
    # whose top is heavy (a pareto(1.5) error), the same samples read `alarm`.
    assert h.p_value < 1e-6 and h.local_p > 0.5 and h.level == "watch", h
    heavy = alarm(hacked, 1.0, BaseStats.from_pool(base + 0.3 * rng.pareto(1.5, base.shape)))
    assert heavy.local_p < 1e-6 and heavy.level == "alarm", heavy


def test_top_share_of_a_gaussian_tilt_is_small_and_of_a_spike_is_large():
    rng = np.random.default_rng(6)
    base = rng.normal(size=(1, 200_000))
    al = tilt_alarm(base, 1.0, 0.5)
    # pi_1 of N(0,1) is N(1,1), a pure shift: its top 1% carries exactly 1% of the gain beyond
    # what the base's own top 1% carried (phi(z_.99) for a standard normal).
    assert al.top_share == pytest.approx(0.01, abs=0.004)
    assert BaseStats.from_pool(base).top == pytest.approx(stats.norm.pdf(stats.norm.ppf(0.99)), rel=0.03)
    spike = np.zeros((1, 1000))
    spike[0, 0] = 1000.0
    b = rng.normal(size=(1, 1000))
    s = alarm(spike, 0.01, BaseStats.from_pool(b - b.mean()))  # base mean exactly 0: the zeros add no gain
    assert s.top_share > 0.95  # 1 minus the base's own top-1% contribution (~0.027)


def test_disagreement_between_reward_models():
    rng = np.random.default_rng(7)
    base = rng.normal(size=(2, 5000))
    bs = BaseStats.from_pool(base)
    pol = base[:, :1000] + 1.0
    agree = alarm(pol, 0.5, bs, others={"rm2": (pol * 2.0, BaseStats.from_pool(base * 2.0))})
    assert agree.disagreement == pytest.approx(0.0, abs=0.05)
    split = alarm(pol, 0.5, bs, others={"rm2": (base[:, :1000], bs)})  # the second RM sees no gain
    assert split.disagreement > 0.9  # evidence beside the decision (it no longer decides)


def test_a_light_policy_far_past_the_base_max_at_high_kl_is_not_an_exploit():
    # A trained light-tailed policy at KL 8: N(sqrt(16), 1) puts ~60% of its mass above the max of
    # 8000 standard normals (~3.8), exactly what the bulk allows at that KL: quiet, not beyond.
    rng = np.random.default_rng(8)
    base = rng.normal(size=(4, 2000))
    pol = rng.normal(4.0, 1.0, size=(4, 500))
    al = alarm(pol, 8.0, BaseStats.from_pool(base))
    assert np.mean(pol > base.max()) > 0.5
    assert al.beyond_max < 0.05 and al.level == "quiet", al
    # ...while 20% of the mass at 30 (a new exploit) is beyond anything the KL explains
    pol[:, :100] = 30.0
    assert alarm(pol, 8.0, BaseStats.from_pool(base)).beyond_max > 0.1


def test_the_effect_size_reads_a_bounded_three_peaked_bulk_as_it_is():
    # A VADER-like utility (three peaks at -0.5, 0 and 0.55: bounded, far from Gaussian) plus a
    # small lognormal error. The central-quantile sigma is wide, so best-of-16's gain is only
    # about the Gaussian bulk's DV bound (ratio near 1: under the former tau 1.15, `watch`), yet
    # 80% and more of it is carried by samples beyond the bulk's 0.9 quantile: the tail the
    # pool's shape test finds heavy. A shift of the whole bulk stays at `watch` (the bulk carries it).
    r = np.random.default_rng(0)
    util = r.choice([-0.5, 0.0, 0.55], size=(16, 1024), p=[0.3, 0.3, 0.4]) + 0.05 * r.normal(size=(16, 1024))
    b = util + 0.1 * r.lognormal(0.0, 1.2, (16, 1024))
    rule = AlarmRule()
    base = BaseStats.from_pool(b, n_null=rule.n_null)
    assert base.tail[1] < rule.alpha / 2  # the tail-shape test rejects the light null
    levels = {n: bon_alarm(b, n, float(kl_bound(n)), rule, base) for n in (4, 16, 32)}
    assert levels[4].level == "watch" and levels[4].tail_share < rule.share  # detectable, not yet material
    for n in (16, 32):
        a = levels[n]
        assert a.level == "alarm" and a.tail_share >= rule.share and a.dv_ratio < 1.2, (n, a)
    shift = alarm(b + 0.3 * base.sigma, 0.05, base, rule=rule)
    assert shift.level == "watch" and shift.tail_share < rule.share, shift


# What the alarm says about fixed pools, at its VERSION. A change of the rule that moves any of
# these fails here: bump eval/alarm.py VERSION (finished points under the old rule then run again,
# pipeline/sweeps/point.py alarm_stale) and record the new readings under it.
PINNED = {
    3: {
        "gaussian bon n=4": ("quiet", 0.0),
        "gaussian bon n=32": ("quiet", 0.0),
        "gaussian tilt beta=0.5": ("quiet", 0.0),
        "gaussian samples +0.5": ("quiet", 0.0),
        "lognormal bon n=4": ("watch", 0.576),
        "lognormal bon n=32": ("alarm", 1.135),
        "lognormal tilt beta=0.5": ("alarm", 1.215),
        "lognormal samples +0.5": ("watch", 0.477),  # a shift of the whole pool: the bulk carries it
        "pareto bon n=4": ("watch", 0.724),
        "pareto bon n=32": ("alarm", 1.175),
        "pareto tilt beta=0.5": ("alarm", 1.244),
        "pareto samples +0.5": ("watch", 0.267),
    },
}
# 4 adds the base-noise test of a policy given as samples (test below): none of these moves
PINNED[4] = dict(PINNED[3])
# 5 puts `alarm` on the local tail test: every level stays; a `watch` whose local test does not reject
# (the pool's tests alone) scores 0 -- lognormal best-of-4 (the Gaussian bulk dominates its depth) and
# the lognormal pool's shifted samples (a shift of the whole bulk): 0.576 and 0.477 under 4
PINNED[5] = PINNED[4] | {"lognormal bon n=4": ("watch", 0.0), "lognormal samples +0.5": ("watch", 0.0)}


def test_a_sampled_policy_needs_more_gain_than_the_base_policys_own_batches():
    """BaseStats.noise_p (rule 4): batches of the base policy itself (8 prompts x 16, resampled
    from a pareto(1.5) x0.3 pool, KL 0.01) read `alarm` about alpha of the time; without the
    noise test (decide on the same evidence, noise_p absent) the heavy tail's batch mean beats the
    bulk-based floor often. A real shift of the bulk still passes it."""
    rule = AlarmRule()
    b = np.random.default_rng(7).normal(size=(8, 2048)) + 0.3 * np.random.default_rng(8).pareto(1.5, (8, 2048))
    base = BaseStats.from_pool(b, n_null=rule.n_null)
    rng = np.random.default_rng(3)
    with_test = without = 0
    for _ in range(400):
        a = alarm(np.take_along_axis(b, rng.integers(0, b.shape[1], (8, 16)), 1), 0.01, base, rule=rule)
        with_test += a.level == "alarm"
        without += (
            decide(a.gain, a.sigma, a.p_value, a.tail_share, rule, a.n_eff, a.tail_p, local_p=a.local_p)[1] == "alarm"
        )
    # measured 0.053 against 0.10 without the test: alpha by construction (the base's batches are
    # what it resamples), up to the Monte Carlo noise of 400 draws (sd 0.011)
    assert with_test / 400 <= rule.alpha + 0.022 and without / 400 >= 0.08
    moved = alarm(b[:, :16] + 1.0, 0.5, base, rule=rule)
    assert moved.noise_p < rule.alpha
    # the pool-based policies are exact weights on the pool: no noise test
    assert np.isnan(bon_alarm(b, 4, float(kl_bound(4)), rule, base).noise_p)


def test_the_alarm_version_names_what_the_alarm_says():
    from goodhart.eval.alarm import VERSION

    rule = AlarmRule()
    pools = {
        "gaussian": lambda r: r.normal(size=(8, 2048)),
        "lognormal": lambda r: r.normal(size=(8, 2048)) + 0.3 * r.lognormal(0.0, 1.0, (8, 2048)),
        "pareto": lambda r: r.normal(size=(8, 2048)) + 0.3 * r.pareto(1.5, (8, 2048)),
    }
    got = {}
    for name, make in pools.items():
        b = make(np.random.default_rng(7))
        base = BaseStats.from_pool(b, n_null=rule.n_null)
        for n in (4, 32):
            a = bon_alarm(b, n, float(kl_bound(n)), rule, base)
            got[f"{name} bon n={n}"] = (a.level, round(a.score, 3))
        a = tilt_alarm(b, 0.5, 1.0, rule, base)
        got[f"{name} tilt beta=0.5"] = (a.level, round(a.score, 3))
        a = alarm(b[:, :64] + 0.5, 0.3, base, rule=rule)
        got[f"{name} samples +0.5"] = (a.level, round(a.score, 3))
    assert VERSION in PINNED, f"alarm VERSION {VERSION} has no pinned readings: record them"
    want = PINNED[VERSION]
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}
    for k, (_, score) in want.items():
        assert got[k][1] == pytest.approx(score, abs=2e-3), k


# The defaults of the rule's keys, at each VERSION. A finished point's id leaves the `alarm:` keys
# out at their defaults (pipeline/sweeps/point.py ADDED_KEYS) and a row from before alarm/rule was
# kept reads as computed under them: a change of a default is a change of the rule (bump VERSION).
DEFAULT_KEYS = {4: "alpha=0.05 share=0.8 n_null=199 null_seed=0 n_noise=1999 min_gain=0.05 noise_z=2.0"}
DEFAULT_KEYS[5] = DEFAULT_KEYS[4]


def test_the_rule_defaults_and_every_version_are_written_down():
    from goodhart.eval.alarm import VERSION, VERSIONS
    from goodhart.eval.goodhart import VERSION as VERDICT_VERSION
    from goodhart.eval.goodhart import VERSIONS as VERDICT_VERSIONS
    from goodhart.pipeline.config.schema import AlarmConfig

    assert AlarmRule().key() == DEFAULT_KEYS[VERSION], "a default of the alarm rule changed: bump VERSION"
    assert sorted(VERSIONS) == list(range(1, VERSION + 1)) and all(VERSIONS.values())
    assert sorted(VERDICT_VERSIONS) == list(range(1, VERDICT_VERSION + 1)) and all(VERDICT_VERSIONS.values())
    # the config's `alarm:` keys are the rule's fields that decide a level, with the same defaults
    assert AlarmConfig().rule() == AlarmRule()
    assert set(AlarmConfig.model_fields) == {k.split("=")[0] for k in AlarmRule().key().split()}


def test_every_rule_field_is_read_by_the_alarm():
    """No field of AlarmRule is decoration: each, moved far, moves a reading (the DV-ratio
    baseline's two move baseline_level)."""
    import dataclasses

    from goodhart.eval.alarm import baseline_level

    b = np.random.default_rng(7).normal(size=(8, 2048)) + 0.3 * np.random.default_rng(8).pareto(1.5, (8, 2048))
    sampled = np.take_along_axis(b, np.random.default_rng(1).integers(0, 2048, (8, 16)), 1) + 0.4

    def reading(rule: AlarmRule) -> tuple:
        base = BaseStats.from_pool(b, n_null=rule.n_null, null_seed=rule.null_seed)
        a, s = bon_alarm(b, 16, float(kl_bound(16)), rule, base), alarm(sampled, 0.3, base, rule=rule)
        return (a.level, a.score, a.p_value, a.tail_p, a.excess, s.level, s.noise_p, s.score)

    rule, ref = AlarmRule(), reading(AlarmRule())
    moved = {
        "alpha": 1e-4,
        "share": 0.05,
        "n_null": 9,
        "null_seed": 5,
        "n_noise": 19,
        "min_gain": 5.0,
        "noise_z": 50.0,
    }
    for f in dataclasses.fields(AlarmRule):
        if f.name in ("dv_alarm", "watch"):
            continue
        assert reading(dataclasses.replace(rule, **{f.name: moved[f.name]})) != ref, f.name
    assert baseline_level(1.5, 1.0, 1.0, rule) == "watch"
    assert baseline_level(1.5, 1.0, 1.0, dataclasses.replace(rule, dv_alarm=1.0)) == "alarm"
    assert baseline_level(1.5, 1.0, 1.0, dataclasses.replace(rule, watch=0.9)) == "quiet"


def test_the_configs_rule_reaches_a_points_row():
    """`alarm.share` (the threshold) and the other `alarm:` keys are built once per run into the rule
    every alarm of the point reads (PointContext.alarm_rule): the row says which (alarm/rule)."""
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.base.pool import Pool
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.optimizers import bon

    a = draw(Law("gaussian"), Law("pareto", alpha=1.5), 6, 512, 3)
    rows = {}
    for share in (0.8, 5.0):
        cfg = load_config(
            None, ["reward=distributional", "algo=bon", "algo.n=64", "eval.bootstrap=0", f"alarm.share={share}"]
        )
        ctx = PointContext(cfg, None, progress=False)  # type: ignore[arg-type]
        ctx._pool = Pool(None, None, a["proxy"], a["utility"], a["error"], "real")
        rows[share] = ctx, bon.run(ctx).row
    (_, r8), (c5, r5) = rows[0.8], rows[5.0]
    assert r8[M.ALARM_LEVEL] == "alarm" and r5[M.ALARM_LEVEL] == "watch"  # the threshold moved, nothing else
    assert r8[M.ALARM_SCORE] == pytest.approx(r5[M.ALARM_SCORE] * 5.0 / 0.8)
    assert r8[M.ALARM_RULE] == AlarmRule().key() and "share=5.0" in r5[M.ALARM_RULE]
    assert c5.alarm_rule is c5.alarm_rule and c5.alarm_rule.share == 5.0  # built once per run


def test_local_tail_remembers_an_order_but_never_a_changed_array():
    # local_tail keeps each pool's descending order (a curve's points reweight one pool); an array
    # changed in place after a call must be sorted again, not read through the remembered order.
    from goodhart.eval.alarm import local_tail

    rng = np.random.default_rng(0)
    desc = np.unique(rng.pareto(1.5, 65536))[::-1]
    c, a = desc[:64].copy(), np.full(64, 1.0 / 64)  # a policy on the base's top 64
    first = local_tail(desc, c, a)
    assert np.isfinite(first).all() and local_tail(desc, c, a) == first
    c[:] = desc[3000:3064]  # the same array object, new values: a policy deeper in the pool
    got = local_tail(desc, c, a)
    import goodhart.eval.alarm as al

    al._DESCENDING.clear()  # nothing remembered: computed from scratch
    assert got == local_tail(desc, c, a) and got != first


def test_top_contribution_is_the_top_mass_by_brute_force():
    # sum of a c over the top 1% of the mass ordered by c, against a full sort; on pools whose top
    # mass sits in positive c (the remembered order) and in c <= 0 (the partition), with ties
    from goodhart.eval.alarm import TOP_MASS, _top_contribution

    def brute(c, a):
        o = np.argsort(-c, kind="stable")
        before = np.concatenate([[0.0], np.cumsum(a[o])[:-1]])
        return float(np.sum(np.clip(TOP_MASS - before, 0.0, a[o]) * c[o]))

    rng = np.random.default_rng(4)
    for case in range(6):
        c = rng.standard_t(3, 20_000)
        if case % 2:
            c = np.round(c, 1)  # ties
        a = rng.exponential(size=c.size) * (np.exp(2 * c) if case < 2 else 1.0)
        if case >= 4:
            a = np.where(c > 0, 1e-9, a)  # the mass below 0: the fallback
        a /= a.sum()
        assert _top_contribution(c, a) == pytest.approx(brute(c, a), rel=1e-12, abs=1e-15)
