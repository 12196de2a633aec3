"""The light-tailed null of the alarm (eval/alarm_null.py): its replicates rerun the optimizers
exactly, its tail is the exponential through the bulk's quantiles, and its p-values are
calibrated on pools drawn from the null itself."""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from goodhart.eval.alarm import AlarmRule, BaseStats, alarm, bon_alarm, dv_bound
from goodhart.eval.alarm_null import LightNull, excess_lower, mean_excess_slope, p_value, tail_scale
from goodhart.eval.bon import best_of_n, kl_bound, order_weights


def _null_pool(nl: LightNull, j: int) -> np.ndarray:
    """Replicate j of the null as a (P, N) pool: bulk as observed, tail redrawn."""
    return np.stack([np.concatenate([bulk, tail[j]]) for bulk, tail in nl._rows()])


def test_replicates_rerun_tilt_and_best_of_n_exactly():
    rng = np.random.default_rng(0)
    b = rng.standard_t(3, (4, 600)) + rng.normal(0, 2, (4, 1))
    nl = LightNull.from_pool(b, 9, seed=1)
    assert nl.k.sum() == pytest.approx(0.1 * b.size, abs=4)  # the top 10% is redrawn
    for j in (0, 8):
        pool = _null_pool(nl, j)
        assert np.all(np.diff(pool, axis=1) >= 0)  # bulk below u, tail above: still sorted
        for n in (2, 16, 150):
            ref = float(np.mean(best_of_n(pool, n)["proxy"] - pool.mean(1)))
            assert nl.bon_gains(order_weights(600, n))[j] == pytest.approx(ref, abs=1e-12)
        for beta in (5.0, 0.7, 0.05):
            lw = pool / beta
            w = np.exp(lw - logsumexp(lw, axis=1, keepdims=True))
            ref = float(np.mean((w * pool).sum(1) - pool.mean(1)))
            assert nl.tilt_gains(beta)[j] == pytest.approx(ref, abs=1e-11)


def test_the_null_tail_is_the_exponential_through_the_bulk_quantiles():
    # Exact quantiles of Exponential(scale 2): Q(q) = -2 log(1 - q); the spacing gives the scale back.
    q = np.linspace(0, 1, 400_001)[1:-1]
    u, s = tail_scale(-2.0 * np.log1p(-q))
    assert u == pytest.approx(-2 * math.log(0.1), rel=1e-4) and s == pytest.approx(2.0, rel=1e-4)
    # A Gaussian's null is heavier than the Gaussian (scale ~0.66 sd, vs a mean excess ~0.47 at Q(0.9))
    z = np.random.default_rng(1).normal(size=400_000)
    assert tail_scale(z)[1] == pytest.approx((1.2816 - 0.6745) / math.log(2.5), rel=0.02)


@pytest.mark.parametrize("law,expect", [("expon", 0.0), ("pareto3", 0.5), ("pareto2.5", 2 / 3)])
def test_mean_excess_slope_is_zero_for_exponential_and_one_over_alpha_minus_one_for_pareto(law, expect):
    rng = np.random.default_rng(2)
    x = rng.exponential(size=2_000_000) if law == "expon" else rng.pareto(float(law[6:]), 2_000_000) + 1
    assert mean_excess_slope(x) == pytest.approx(expect, abs=0.06)
    # only the top is needed: the same slope from the values above Q(0.9) and the total count
    top = np.sort(x)[-200_000:]
    assert mean_excess_slope(top, total=x.size) == pytest.approx(mean_excess_slope(x), abs=1e-3)
    assert mean_excess_slope(rng.normal(size=1_000_000)) < -0.1  # lighter than exponential


def test_p_value_and_excess_by_hand():
    null = np.arange(1.0, 100.0)  # 99 replicates 1..99
    assert p_value(100.0, null) == pytest.approx(1 / 100)
    assert p_value(50.0, null) == pytest.approx(51 / 100)
    # rounding is a tie: best-of-1 (the base itself) against replicates that differ by 1e-17
    assert p_value(0.0, np.array([-1e-17, 2e-17, -3e-18])) == 1.0 and p_value(1e-6, np.zeros(3)) == 0.25
    assert excess_lower(190.0, null, 0.05) == pytest.approx((190 - 95) / 190)
    assert excess_lower(90.0, null, 0.05) < 0


def _rejections(draw, seeds, n=64, alpha=0.1):
    rule = AlarmRule(alpha=alpha, share=0.0, n_null=99)
    out = []
    for s in seeds:
        b = draw(np.random.default_rng(s))
        out.append(bon_alarm(b, n, float(kl_bound(n)), rule).p_value < alpha)
    return float(np.mean(out))


def test_p_values_are_calibrated_on_the_null_and_see_power_tails():
    # A pure exponential is its own null (memoryless: the scale through Q(.75), Q(.9) is exact):
    # best-of-64's gain rejects at about alpha. 60 pools: binomial(60, 0.1) is in [1, 12] w.p. > 0.99.
    expo = _rejections(lambda r: r.exponential(1.0, (4, 1024)), range(60))
    assert 1 / 60 <= expo <= 12 / 60, expo
    assert _rejections(lambda r: r.normal(size=(4, 1024)), range(20)) == 0.0  # lighter than its null
    assert _rejections(lambda r: r.standard_t(3, (4, 1024)), range(10)) >= 0.9  # a power tail


def test_the_null_dv_bound_of_an_exponential_pool_is_the_exponential_one():
    # The null of an Exponential(1) pool is ~Exponential(1): inf_l (k - log(1 - l) - l) / l.
    b = np.random.default_rng(3).exponential(size=(1, 400_000))
    nl = LightNull.from_pool(b, 0)

    def cgf(lam):
        return -math.log1p(-lam) - lam if lam < 1 else math.inf

    for k in (0.2, 1.0, 4.0):
        assert nl.dv_bound(k) == pytest.approx(dv_bound(k, cgf), rel=0.03)


def test_a_sampled_policy_is_tested_against_the_null_dv_bound():
    rng = np.random.default_rng(4)
    base = rng.normal(size=(1, 20_000))
    bs = BaseStats.from_pool(base, per_prompt=False)
    light = np.max(rng.normal(size=(2000, 16)), axis=1)  # best-of-16 drawn: within the bound
    assert alarm(light, float(kl_bound(16)), bs).level == "quiet"
    hacked = light.copy()
    hacked[:200] = 25.0  # 10% of the samples far beyond anything the null allows at this KL
    a = alarm(hacked, float(kl_bound(16)), bs)
    # the gain test rejects the null (`watch`); where that gain is bought, beyond the base's largest
    # reward, the base shows a Gaussian tail, so nothing says it is heavier than exponential there
    assert a.test == "null DV bound" and a.p_value < 1e-6 and a.level == "watch"


def test_a_tied_bulk_still_gets_a_light_tail_and_stays_quiet():
    # VADER-like: scores on a few values, Q(0.75) == Q(0.9) == 0.5: the scale comes from the median
    rng = np.random.default_rng(5)
    b = rng.choice([0.0, 0.5, 0.8], p=[0.6, 0.35, 0.05], size=(4, 2000))
    assert np.all(np.quantile(b, [0.75, 0.9], axis=1) == 0.5)
    u, s = tail_scale(b - np.median(b, axis=1, keepdims=True))
    assert (u, s) == (0.5, pytest.approx(0.5 / math.log(5)))
    for n in (4, 64):
        assert bon_alarm(b, n, float(kl_bound(n))).level == "quiet"


def test_a_pool_with_nothing_above_its_tail_threshold_has_no_tail_test_and_no_crash():
    # a discrete base (two reward values, as a rule-based reward gives): no sample lies above the
    # 0.9 quantile, so there is no mean-excess slope to read; the base still builds (the online
    # monitor and the TRL callback build theirs from whatever the base policy scored)
    from goodhart.eval.alarm import BaseStats

    b = BaseStats.from_pool(np.array([[0.0, 1.0] * 8]), per_prompt=False, n_null=19)
    assert b.tail is not None and math.isnan(b.tail[0]) and math.isnan(b.tail[1])


def _tilt_gains_in_full(nl: LightNull, beta: float) -> np.ndarray:
    """tilt_gains as first written: every redrawn tail value exponentiated, in fresh arrays."""
    out, N = 0.0, nl.sorted_pool.shape[1]
    for bulk, tail in nl._rows():
        mb, mt = bulk[-1] / beta, tail[:, -1] / beta
        m = np.maximum(mb, mt)
        eb = np.exp(bulk / beta - mb)
        scale = np.exp(mb - m)
        et = np.exp(tail / beta - m[:, None])
        mean_t = (eb @ bulk * scale + np.sum(et * tail, axis=1)) / (eb.sum() * scale + et.sum(1))
        out = out + mean_t - (bulk.sum() + tail.sum(1)) / N
    return np.asarray(out) / nl.sorted_pool.shape[0]


@pytest.mark.parametrize("beta", [30.0, 0.3, 0.01])
def test_tilt_gains_drop_only_negligible_weights(beta):
    # A Levy-like bulk gives the null a huge exponential scale: at a small beta most redrawn tail
    # values have weights below exp(-64) of their replicate's largest, which tilt_gains leaves at 0
    # without computing them. The gains must be the full computation's to rounding, on every
    # replicate and at every beta (the dropped mass is < 4e-19 of the normalizer).
    import goodhart.eval.alarm_null as an

    rng = np.random.default_rng(3)
    b = 1.0 / rng.normal(size=(3, 4000)) ** 2
    nl = LightNull.from_pool(b, 19, seed=2)
    full = _tilt_gains_in_full(nl, beta)
    scale = float(np.max(np.abs(nl.sorted_pool)))
    assert np.allclose(nl.tilt_gains(beta), full, rtol=1e-12, atol=4e-19 * scale)
    tail = nl.tails[0]
    m = np.maximum(nl.sorted_pool[0, -nl.k[0] - 1] / beta, tail[:, -1] / beta)
    dropped = float(np.mean(tail / beta - m[:, None] <= an.NEGLIGIBLE))
    assert dropped > 0.5 if beta == 0.01 else True  # the case the cut is for: most of the tail
    assert dropped == 0.0 if beta == 30.0 else True
    if beta != 30.0:  # a cut that drops weights that count (at -5) is caught by the same comparison
        cut, an.NEGLIGIBLE = an.NEGLIGIBLE, -5.0
        try:
            assert not np.allclose(nl.tilt_gains(beta), full, rtol=1e-12, atol=4e-19 * scale)
        finally:
            an.NEGLIGIBLE = cut
