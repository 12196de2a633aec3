"""Named distributions: X = loc + scale * (Z - median(Z) if center else Z).

Draws go through the survival function's inverse, ``Z = isf(s)`` with s in (0, 1), so the far
upper tail (s ~ 1e-12, where u = 1 - s has no float64 digits left) stays exact: heavy tails are
the point of this project.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


def _isf(name: str, law: Law):
    """Z's inverse survival function as scipy.stats computes it (each law's ``_isf``, the same
    expressions: bit for bit, tests/test_rewards.py), without importing scipy.stats (~1 s of CPU in
    every sweep worker that only draws)."""
    from scipy import special as sc

    return {
        "gaussian": lambda q: -sc.ndtri(q),
        "student_t": lambda q: -sc.stdtrit(law.df, q),
        "lognormal": lambda q: np.exp(law.sigma * -sc.ndtri(q)),
        "pareto": lambda q: np.power(q, -1.0 / law.alpha),
        "levy": lambda q: 1 / (2 * sc.erfinv(q) ** 2),
        "exponential": lambda q: -np.log(q),
        "uniform": lambda q: 1.0 - q,
        "gumbel": lambda q: -np.log(-np.log1p(-q)),
    }[name]


@dataclass(frozen=True)
class Law:
    name: str
    df: float = 2.0
    sigma: float = 1.0
    alpha: float = 1.5
    scale: float = 1.0
    loc: float = 0.0
    center: bool = False

    @cached_property
    def standard(self):
        """The frozen scipy law of Z (before centring and scaling): a scipy.stats rv_frozen. Cached:
        freezing a scipy law costs ~2-5 ms, and a trained run scores a small batch every step."""
        from scipy import stats

        return {
            "gaussian": lambda: stats.norm(),
            "student_t": lambda: stats.t(self.df),
            "lognormal": lambda: stats.lognorm(self.sigma),
            "pareto": lambda: stats.pareto(self.alpha),  # P(Z > z) = z^-alpha, z >= 1
            "levy": lambda: stats.levy(),
            "exponential": lambda: stats.expon(),
            "uniform": lambda: stats.uniform(),
            "gumbel": lambda: stats.gumbel_r(),
        }[self.name]()

    @cached_property
    def _isf(self):
        return _isf(self.name, self)

    @cached_property
    def _shift(self) -> float:
        return float(self.standard.median()) if self.center else 0.0

    def from_survival(self, s: np.ndarray) -> np.ndarray:
        """The value whose survival probability under this law is s."""
        q = np.asarray(s, dtype=np.float64)
        inside = np.all((q > 0) & (q < 1))  # else the support's ends and NaN for bad values, as scipy gives them
        z = self._isf(q) if inside else self.standard.isf(q)
        return self.loc + self.scale * (z - self._shift)

    def sample(self, size, rng: np.random.Generator) -> np.ndarray:
        # Open interval (0, 1): a survival of exactly 0 would map to +inf.
        s = rng.random(size)
        s = np.where(s == 0.0, np.nextafter(0.0, 1.0), s)
        return self.from_survival(s)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """CDF of X (for calibration tests)."""
        return self.standard.cdf((np.asarray(x) - self.loc) / self.scale + self._shift)
