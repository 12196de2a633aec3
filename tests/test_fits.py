"""Gao et al. (2022) curve fits on synthetic curves with known coefficients (eval/fits.py)."""

import numpy as np
import pytest

from goodhart.eval.fits import FitResult, fit_bon, fit_rl


def _bon(d: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return d * (alpha - beta * d)


def _rl(d: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return d * (alpha - beta * np.log(d))


def _assert_recovers(fit: FitResult, alpha: float, beta: float) -> None:
    assert fit.sound, fit.reason
    assert fit.reason == "ok"
    assert abs(fit.alpha - alpha) < 3 * fit.alpha_se
    assert abs(fit.beta - beta) < 3 * fit.beta_se
    assert fit.kl_star == pytest.approx(fit.d_star**2)
    assert fit.d_star_ci[0] < fit.d_star < fit.d_star_ci[1]
    assert fit.r2 > 0.95


@pytest.mark.parametrize("seed", range(5))
def test_fit_bon_recovers_coefficients_and_peak(seed: int) -> None:
    alpha, beta = 1.2, 0.15
    d = np.linspace(0.2, 7.0, 25)
    gain = _bon(d, alpha, beta) + np.random.default_rng(seed).normal(0, 0.05, d.size)
    fit = fit_bon(d**2, gain)
    _assert_recovers(fit, alpha, beta)
    assert fit.d_star == pytest.approx(alpha / (2 * beta), rel=0.1)
    assert fit.peak_gain == pytest.approx(alpha**2 / (4 * beta), rel=0.1)


@pytest.mark.parametrize("seed", range(5))
def test_fit_rl_recovers_coefficients_and_peak(seed: int) -> None:
    alpha, beta = 1.0, 0.35
    d = np.linspace(0.3, 12.0, 25)
    gain = _rl(d, alpha, beta) + np.random.default_rng(seed).normal(0, 0.05, d.size)
    fit = fit_rl(d**2, gain)
    _assert_recovers(fit, alpha, beta)
    d_star = np.exp(alpha / beta - 1)
    assert fit.d_star == pytest.approx(d_star, rel=0.1)
    assert fit.peak_gain == pytest.approx(beta * d_star, rel=0.1)
    np.testing.assert_allclose(fit.predict(d**2), _rl(d, fit.alpha, fit.beta))


@pytest.mark.parametrize("fit", [fit_bon, fit_rl])
def test_three_points_are_unsound(fit) -> None:
    d = np.array([0.5, 2.0, 4.0])
    result = fit(d**2, _bon(d, 1.0, 0.2))
    assert not result.sound
    assert "at least 4" in result.reason


@pytest.mark.parametrize("fit", [fit_bon, fit_rl])
def test_monotone_linear_gain_has_no_peak(fit) -> None:
    d = np.linspace(0.2, 6.0, 20)
    gain = 0.5 * d + np.random.default_rng(0).normal(0, 0.02, d.size)
    result = fit(d**2, gain)
    assert not result.sound
    assert "b = " in result.reason and "not significantly > 0" in result.reason


def test_peak_far_beyond_the_data_is_unsound() -> None:
    d = np.linspace(0.1, 2.0, 15)  # true peak at d* = 10
    gain = _bon(d, 1.0, 0.05) + np.random.default_rng(1).normal(0, 0.002, d.size)
    result = fit_bon(d**2, gain)
    assert result.beta_ci[0] > 0  # the curvature is real ...
    assert not result.sound and "extrapolation" in result.reason  # ... the peak is not seen


def test_poor_fit_is_unsound() -> None:
    d = np.linspace(0.2, 6.0, 20)
    result = fit_bon(d**2, np.random.default_rng(2).normal(0, 1.0, d.size))
    assert not result.sound and ("R^2" in result.reason or "b = " in result.reason)


def test_identical_kl_values_give_infinite_covariance() -> None:
    result = fit_bon(np.full(6, 2.0), np.linspace(1.0, 1.5, 6))
    assert not result.sound and "covariance" in result.reason


def test_weights_downweight_noisy_points() -> None:
    alpha, beta = 1.2, 0.15
    rng = np.random.default_rng(3)
    d = np.linspace(0.2, 7.0, 30)
    se = np.where(np.arange(d.size) % 3 == 0, 1.0, 0.01)  # a third of the points are junk
    gain = _bon(d, alpha, beta) + rng.normal(0, se)
    weighted = fit_bon(d**2, gain, weights=1 / se**2)
    _assert_recovers(weighted, alpha, beta)
    assert weighted.beta_se < fit_bon(d**2, gain).beta_se


def test_equal_weights_match_unweighted_coefficients() -> None:
    d = np.linspace(0.3, 10.0, 12)
    gain = _rl(d, 1.0, 0.35) + np.random.default_rng(4).normal(0, 0.05, d.size)
    a, b = fit_rl(d**2, gain), fit_rl(d**2, gain, weights=np.full(d.size, 7.0))
    assert (a.alpha, a.beta) == pytest.approx((b.alpha, b.beta))


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="negative"):
        fit_bon(np.array([-0.1, 1.0, 2.0, 3.0]), np.ones(4))
    with pytest.raises(ValueError, match="equal length"):
        fit_rl(np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="weights"):
        fit_bon(np.arange(4.0), np.ones(4), weights=np.zeros(4))


def test_str_reports_coefficients_peak_and_soundness() -> None:
    d = np.linspace(0.2, 7.0, 10)
    text = str(fit_bon(d**2, _bon(d, 1.2, 0.15)))
    assert "a = 1.2" in text and "b = 0.15" in text and "sound: True" in text and "KL* = " in text
    assert "alpha" not in text and "beta" not in text  # beta names the KL coefficient elsewhere
    two = str(fit_bon(d[:2] ** 2, _bon(d[:2], 1.2, 0.15)))  # too few points: no peak is claimed
    assert "sound: False" in two and "KL*" not in two and "not established" in two


def test_an_rl_peak_beyond_floating_point_range_is_an_extrapolation_not_an_overflow():
    """RL form d (a - b log d) with a / b = 500: d* = exp(a/b - 1) ~ 1e216, whose square (the peak
    KL) overflows a float. The fit says KL* = inf and calls the peak an extrapolation (the arena's
    report crashed on such a curve with OverflowError)."""
    kl = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 8.0])
    d = np.sqrt(kl)
    fit = fit_rl(kl, d * (1.0 - 0.002 * np.log(d)))
    assert fit.d_star > 1e154 and fit.kl_star == float("inf")
    assert not fit.sound and "extrapolation" in fit.reason
