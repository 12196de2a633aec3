"""Reward algebra: weighted sums, and clipping that is never silent."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from goodhart.rewards.base import Reward, checked


class WeightedSum:
    """sum_i w_i * r_i. One term with a weight is a scaled reward."""

    def __init__(self, terms: Sequence[Reward], weights: Sequence[float] | None = None):
        self.terms = list(terms)
        self.weights = list(weights) if weights is not None else [1.0] * len(self.terms)
        self.name = "+".join(t.name if w == 1 else f"{w:g}*{t.name}" for t, w in zip(self.terms, self.weights))

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        total = np.zeros(len(completions))
        for t, w in zip(self.terms, self.weights):
            total += w * t.score(prompts, completions)
        return checked(self.name, total, prompts, completions)


class Clipped:
    """Clip a reward to [low, high] and count what was clipped (``clipped_fraction``), so a run
    that clips says so in its metrics."""

    def __init__(self, inner: Reward, low: float | None, high: float | None):
        self.inner, self.low, self.high = inner, low, high
        self.name = inner.name
        self.n_seen = 0
        self.n_clipped = 0

    @property
    def clipped_fraction(self) -> float:
        return self.n_clipped / self.n_seen if self.n_seen else 0.0

    def clip(self, values: np.ndarray) -> np.ndarray:
        lo = -np.inf if self.low is None else self.low
        hi = np.inf if self.high is None else self.high
        self.n_seen += values.size
        self.n_clipped += int(np.count_nonzero((values < lo) | (values > hi)))
        return np.clip(values, lo, hi)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return self.clip(self.inner.score(prompts, completions))
