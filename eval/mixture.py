"""What it costs a policy to put probability p on one sequence y*, and what that buys.

The mixture pi_p = (1 - p) pi_0 + p delta_{y*} moves mass p onto y*. With q = pi_0(y*):

    pi_p(y*) = (1 - p) q + p,          pi_p(y) = (1 - p) pi_0(y)   for y != y*

    KL(pi_p || pi_0) = sum_y pi_p(y) log(pi_p(y) / pi_0(y))
                     = ((1 - p) q + p) log(1 - p + p / q)     [the y* term]
                     + (1 - p) (1 - q) log(1 - p)             [every other y: mass (1 - p)(1 - q)]

For q -> 0 this is ~ p log(p / q) + (1 - p) log(1 - p): the cost grows only like
p * (-log q), linearly in how improbable y* is, while the reward gain

    E_{pi_p}[r] - E_{pi_0}[r] = (1 - p) E_0[r] + p r(y*) - E_0[r] = p (r(y*) - E_0[r])

is exact (no approximation) and grows with how far r(y*) reaches. A reward whose top reaches
far beyond its bulk (Kwa et al.'s heavy tail) gives large gains at small KL. For comparison,
a reward that is sub-Gaussian with scale s under pi_0 allows at most s sqrt(2 KL) of gain at
that KL, for any policy (Donsker-Varadhan).

Pure functions on numbers; q enters as log q because real sequences have log q of -50..-500.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def mixture_kl(p: float, log_q: float) -> float:
    """KL(pi_p || pi_0) in nats for pi_p = (1 - p) pi_0 + p delta_{y*}, log_q = log pi_0(y*).

    Exact, and stable for log_q down to -inf-like values (q underflows to 0 harmlessly)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if log_q > 0:
        raise ValueError(f"log_q is a log-probability and must be <= 0, got {log_q}")
    if p == 0.0:
        return 0.0
    q = float(np.exp(log_q))
    mass_star = (1.0 - p) * q + p  # pi_p(y*)
    if p == 1.0:
        return -log_q  # all mass on y*: KL = log(1 / q)
    # log(pi_p(y*) / q) = log(1 - p + p / q) = logaddexp(log(1 - p), log p - log q)
    log_ratio_star = float(np.logaddexp(np.log1p(-p), np.log(p) - log_q))
    return mass_star * log_ratio_star + (1.0 - p) * (1.0 - q) * float(np.log1p(-p))


def mixture_gain(p: float, reward_star: float, base_mean: float) -> float:
    """E_{pi_p}[r] - E_{pi_0}[r] = p (r(y*) - E_0[r]), exact."""
    return p * (reward_star - base_mean)


def gaussian_gain_bound(kl: float, scale: float) -> float:
    """The most proxy gain any policy at this KL can get from a reward that is sub-Gaussian
    with scale `scale` under pi_0 (Donsker-Varadhan, minimized over lambda): scale sqrt(2 KL)."""
    return scale * float(np.sqrt(2.0 * max(kl, 0.0)))


@dataclass(frozen=True)
class MixtureRow:
    """One p of the trade-off table."""

    p: float
    kl: float
    gain: float
    gain_per_nat: float
    gaussian_bound: float


def mixture_table(ps: list[float], log_q: float, reward_star: float, base_mean: float, base_std: float):
    """Rows of (p, KL, reward gain, gain per nat, sub-Gaussian bound at that KL)."""
    rows = []
    for p in ps:
        kl = mixture_kl(p, log_q)
        gain = mixture_gain(p, reward_star, base_mean)
        rows.append(MixtureRow(p, kl, gain, gain / kl if kl > 0 else float("nan"), gaussian_gain_bound(kl, base_std)))
    return rows
