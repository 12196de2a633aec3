"""Reward transforms anchored at the base policy's own rewards: a bounded (or bounded-above)
transform makes any error light-tailed, at a price in how much utility the proxy still points at.

* ``clip``: u = min(r, Q(q)), Q the base rewards' quantile (default q = 0.99).
* ``log_sigmoid``: u = log sigmoid((r - Q(q)) / scale), centred at a base quantile (default the
  median; Wang et al. 2024, "Transforming and Combining Rewards for Aligning LLMs", centre at a
  per-prompt reference reward). Bounded above by 0: the top of the proxy saturates.
* ``rank``: u = F(r), the base rewards' CDF (piecewise linear between 1,025 base quantiles), in [0, 1].

A transform is fitted once on base rewards (:meth:`Transform.fit`) and its state (the quantiles)
is saved with the run and is part of the pool's identity, so a different base sample never
hides behind the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from goodhart.rewards.base import Reward, checked

KINDS = ("clip", "log_sigmoid", "rank")
DEFAULT_QUANTILE = {"clip": 0.99, "log_sigmoid": 0.5, "rank": None}
RANK_LEVELS = np.linspace(0.0, 1.0, 1025)


class Transform:
    """u = T(r) with T anchored at base-reward quantiles; call :meth:`fit` before use."""

    def __init__(self, kind: str, quantile: float | None = None, scale: float = 1.0):
        if kind not in KINDS:
            raise ValueError(f"reward transform must be one of {', '.join(KINDS)}, not {kind!r}")
        self.kind, self.scale = kind, float(scale)
        self.quantile = DEFAULT_QUANTILE[kind] if quantile is None else float(quantile)
        self._ref: list[float] | None = None

    @property
    def label(self) -> str:
        q = "" if self.kind == "rank" else f"q={self.quantile:g}"
        s = f", scale={self.scale:g}" if self.kind == "log_sigmoid" and self.scale != 1 else ""
        return f"{self.kind}({q}{s})"

    @property
    def fitted(self) -> bool:
        return self._ref is not None

    @property
    def reference(self) -> float:
        """The anchoring base quantile (rank: the base median)."""
        assert self._ref is not None, "transform used before fit()"
        return self._ref[0] if self.kind != "rank" else float(np.interp(0.5, RANK_LEVELS, self._ref))

    def fit(self, base: np.ndarray) -> Transform:
        b = np.asarray(base, dtype=np.float64).ravel()
        if self.kind == "rank":
            self._ref = np.quantile(b, RANK_LEVELS).tolist()
        else:
            self._ref = [float(np.quantile(b, self.quantile))]
        return self

    def state(self) -> dict[str, Any]:
        """JSON-able: what must be saved to reproduce the transform."""
        return {"kind": self.kind, "quantile": self.quantile, "scale": self.scale, "ref": self._ref}

    def load_state(self, state: dict[str, Any]) -> Transform:
        self._ref = state["ref"]
        return self

    def __call__(self, r: np.ndarray) -> np.ndarray:
        if self._ref is None:
            raise RuntimeError(f"reward transform {self.label} used before fit() on base rewards")
        r = np.asarray(r, dtype=np.float64)
        if self.kind == "clip":
            return np.minimum(r, self._ref[0])
        if self.kind == "log_sigmoid":
            return -np.logaddexp(0.0, -(r - self._ref[0]) / self.scale)  # log sigmoid, stable both ways
        return np.interp(r, np.asarray(self._ref), RANK_LEVELS)  # 0 below the base min, 1 above its max


class TransformedReward:
    """A reward seen through a fitted transform (any reward of the registry)."""

    def __init__(self, inner: Reward, transform: Transform):
        self.inner, self.transform = inner, transform
        self.name = f"{transform.label}[{inner.name}]"

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return checked(self.name, self.transform(self.inner.score(prompts, completions)), prompts, completions)
