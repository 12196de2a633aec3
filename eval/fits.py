"""Gao, Schulman & Hilton (2022) over-optimization curves: gold gain as a function of KL.

With d = sqrt(KL(pi || pi_0)):
  best-of-n  R(d) = d (a - b d)        peak d* = a / (2 b),  R(d*) = a^2 / (4 b)
  RL         R(d) = d (a - b ln d)     peak d* = exp(a / b - 1),  R(d*) = b d*
(a, b: FitResult.alpha, .beta; printed as a and b, since beta names the KL coefficient elsewhere.)
Both are linear in (a, b), so the fit is (weighted) least squares on the design
[d, -d^2] or [d, -d ln d]: exact, no starting point, closed-form covariance. A fit is
`sound` only if the data actually pin down a peak; `reason` says why not otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import xlogy

FORMS = ("bon", "rl")


@dataclass(frozen=True)
class FitResult:
    """Coefficients, their uncertainty, the predicted peak and whether to believe it."""

    form: str
    alpha: float
    beta: float
    alpha_se: float
    beta_se: float
    alpha_ci: tuple[float, float]
    beta_ci: tuple[float, float]
    cov: np.ndarray
    d_star: float
    d_star_ci: tuple[float, float]
    kl_star: float
    kl_star_ci: tuple[float, float]
    peak_gain: float
    r2: float
    n_points: int
    d_range: tuple[float, float]
    level: float
    sound: bool
    reason: str

    def predict(self, kl: np.ndarray) -> np.ndarray:
        """Fitted gain R(sqrt(kl))."""
        return _design(self.form, np.sqrt(np.asarray(kl, dtype=np.float64))) @ np.array([self.alpha, self.beta])

    def __str__(self) -> str:
        # printed as a and b: `beta` is the KL coefficient everywhere else in the outputs
        head = "R(d) = d (a - b d)" if self.form == "bon" else "R(d) = d (a - b ln d)"
        pct = f"{self.level:.0%}"

        def ci(lo: float, hi: float) -> str:  # too few points: say so rather than print +-inf
            return f"[{lo:.4g}, {hi:.4g}]" if np.isfinite(lo) and np.isfinite(hi) else "[no interval: too few points]"

        def se(v: float) -> str:
            return f" +- {v:.2g}" if np.isfinite(v) else ""

        observed = f"observed d in [{self.d_range[0]:.3g}, {self.d_range[1]:.3g}]"
        peak = (
            f"  peak d* = {self.d_star:.4g} {ci(*self.d_star_ci)}, KL* = {self.kl_star:.4g}, "
            f"gain at peak = {self.peak_gain:.4g}; {observed}"
            if self.sound
            else f"  peak: not established by these points (unsound fit); {observed}"
        )
        return "\n".join(
            [
                f"{self.form} fit  {head}  (n={self.n_points}, R^2={self.r2:.3f})",
                f"  a = {self.alpha:.4g}{se(self.alpha_se)}  {pct} {ci(*self.alpha_ci)}",
                f"  b = {self.beta:.4g}{se(self.beta_se)}  {pct} {ci(*self.beta_ci)}",
                peak,
                f"  sound: {self.sound} ({self.reason})",
            ]
        )


def _design(form: str, d: np.ndarray) -> np.ndarray:
    """Columns multiplying (alpha, beta): bon [d, -d^2], rl [d, -d ln d] (0 at d = 0)."""
    if form == "bon":
        return np.column_stack([d, -(d**2)])
    if form == "rl":
        return np.column_stack([d, -xlogy(d, d)])
    raise ValueError(f"form must be one of {FORMS}, got {form!r}")


def _inputs(kl: np.ndarray, gain: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kl, gain = np.asarray(kl, dtype=np.float64), np.asarray(gain, dtype=np.float64)
    if kl.ndim != 1 or kl.shape != gain.shape:
        raise ValueError(f"kl and gain must be 1-D of equal length, got {kl.shape} and {gain.shape}")
    if not (np.all(np.isfinite(kl)) and np.all(np.isfinite(gain))):
        raise ValueError("kl and gain must be finite; drop nan/inf points first")
    if np.any(kl < 0):
        raise ValueError(
            f"kl has {int(np.sum(kl < 0))} negative values (min {kl.min():.3g}); the k1 "
            "estimator can go negative: clip at 0 or use k3"
        )
    w = np.ones_like(kl) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != kl.shape or not np.all(np.isfinite(w) & (w > 0)):
        raise ValueError("weights must be positive, finite and one per point (1 / se^2)")
    return np.sqrt(kl), gain, w


def _peak(form: str, a: float, b: float, cov: np.ndarray, z: float) -> tuple[float, tuple[float, float]]:
    """d* and its interval by the delta method on log d* (keeps it positive).

    bon: log d* = log a - log b - log 2, gradient (1/a, -1/b)
    rl:  log d* = a/b - 1,               gradient (1/b, -a/b^2)
    """
    if b <= 0 or (form == "bon" and a <= 0):
        return float("nan"), (float("nan"), float("nan"))
    if form == "bon":
        log_d, grad = np.log(a / (2 * b)), np.array([1 / a, -1 / b])
    else:
        log_d, grad = a / b - 1, np.array([1 / b, -a / b**2])
    with np.errstate(over="ignore", invalid="ignore"):
        var = float(grad @ cov @ grad)  # nan or inf when cov is not finite
        sd = np.sqrt(var) if var >= 0 else float("nan")
        return float(np.exp(log_d)), (float(np.exp(log_d - z * sd)), float(np.exp(log_d + z * sd)))


def _fit(
    form: str,
    kl: np.ndarray,
    gain: np.ndarray,
    weights: np.ndarray | None,
    level: float,
    min_r2: float,
    max_extrapolation: float,
) -> FitResult:
    d, y, w = _inputs(kl, gain, weights)
    n, dof = d.size, d.size - 2
    X = _design(form, d)
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0] if n else np.zeros(2)
    resid = y - X @ coef
    chi2 = float(w @ resid**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Unweighted: residual variance s^2. Weighted (1/se^2): the stated errors, inflated
        # by the reduced chi-square when the points scatter more than they claim.
        s2 = chi2 / dof if dof > 0 else np.inf
        s2 = max(s2, 1.0) if weights is not None else s2
        xtwx = X.T @ (X * w[:, None])
        cov = np.linalg.inv(xtwx) * s2 if np.linalg.cond(xtwx) < 1e12 else np.full((2, 2), np.inf)
    ss_tot = float(w @ (y - w @ y / w.sum()) ** 2) if n else 0.0
    r2 = 1 - chi2 / ss_tot if ss_tot > 0 else float("nan")
    a, b = (float(c) for c in coef)
    se = np.sqrt(np.abs(np.diag(cov)))
    t = float(stats.t.ppf(0.5 + level / 2, dof)) if dof > 0 else float("inf")
    ci = [(float(c - t * s), float(c + t * s)) for c, s in zip(coef, se)]
    finite = bool(np.all(np.isfinite(cov)))
    d_star, d_ci = _peak(form, a, b, cov, t)
    if np.isnan(d_star):
        peak_gain = float("nan")
    else:
        peak_gain = a**2 / (4 * b) if form == "bon" else b * d_star
    pos = d[d > 0]
    d_range = (float(pos.min()), float(pos.max())) if pos.size else (float("nan"), float("nan"))

    reasons = []
    if n < 4:
        reasons.append(f"only {n} point(s); a 2-parameter curve needs at least 4 to be checked")
    if not finite:
        reasons.append("covariance is not finite (too few distinct KL values)")
    has_peak = finite and ci[1][0] > 0
    if finite and not has_peak:
        reasons.append(
            f"b = {b:.3g} is not significantly > 0 ({level:.0%} interval "
            f"[{ci[1][0]:.3g}, {ci[1][1]:.3g}]): no peak is established, a monotone gain fits as well"
        )
    if form == "bon" and a <= 0:
        reasons.append(f"a = {a:.3g} <= 0: the fitted gain never rises")
    if not r2 >= min_r2:
        reasons.append(f"R^2 = {r2:.3f} < {min_r2}: the form does not describe the data")
    if has_peak and not d_star <= max_extrapolation * d_range[1]:
        reasons.append(
            f"peak d* = {d_star:.3g} (KL {_square(d_star):.3g}) is {d_star / d_range[1]:.3g}x the "
            f"largest observed d = {d_range[1]:.3g}: an extrapolation"
        )
    if has_peak and d_star < d_range[0] / max_extrapolation:
        reasons.append(
            f"peak d* = {d_star:.3g} is {d_range[0] / d_star:.3g}x below the smallest observed "
            f"d = {d_range[0]:.3g}: an extrapolation"
        )
    return FitResult(
        form=form,
        alpha=a,
        beta=b,
        alpha_se=float(se[0]),
        beta_se=float(se[1]),
        alpha_ci=ci[0],
        beta_ci=ci[1],
        cov=cov,
        d_star=d_star,
        d_star_ci=d_ci,
        kl_star=_square(d_star),  # rl's d* = exp(a/b - 1) can exceed sqrt(float max)
        kl_star_ci=(_square(d_ci[0]), _square(d_ci[1])),  # a huge bound squares to inf, not OverflowError
        peak_gain=float(peak_gain),
        r2=float(r2),
        n_points=n,
        d_range=d_range,
        level=level,
        sound=not reasons,
        reason="; ".join(reasons) or "ok",
    )


def fit_bon(
    kl: np.ndarray,
    gain: np.ndarray,
    weights: np.ndarray | None = None,
    level: float = 0.95,
    min_r2: float = 0.8,
    max_extrapolation: float = 2.0,
) -> FitResult:
    """Fit the best-of-n form R(d) = d (alpha - beta d), d = sqrt(kl).

    Weighted least squares with weights (1/se^2 per point, optional); intervals are
    t-intervals with n - 2 degrees of freedom. Peak d* = alpha / (2 beta), KL* = d*^2,
    with a delta-method interval on log d*. Not sound when: fewer than 4 points; the
    covariance is not finite; beta is not significantly > 0 (no peak); alpha <= 0;
    R^2 < min_r2; or d* lies more than max_extrapolation times outside the observed d.
    """
    return _fit("bon", kl, gain, weights, level, min_r2, max_extrapolation)


def fit_rl(
    kl: np.ndarray,
    gain: np.ndarray,
    weights: np.ndarray | None = None,
    level: float = 0.95,
    min_r2: float = 0.8,
    max_extrapolation: float = 2.0,
) -> FitResult:
    """Fit the RL form R(d) = d (alpha - beta ln d), d = sqrt(kl).

    As fit_bon, with peak d* = exp(alpha / beta - 1) and gain at the peak beta d*.
    """
    return _fit("rl", kl, gain, weights, level, min_r2, max_extrapolation)


def _square(x: float) -> float:
    return x * x if abs(x) < 1e154 else float("inf")
