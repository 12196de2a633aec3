"""An example goodhart reward plug-in (examples/reward_plugin/pyproject.toml registers it).

goodhart's reward interface is one method, ``score(prompts, completions) -> numpy array of float``
(one float per completion), plus a ``name``. The factory gets the config's ``reward.kwargs``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Exclaim:
    """``weight`` x the number of '!' in a completion, capped at ``cap`` (None: uncapped, a
    reward a policy can win without limit)."""

    def __init__(self, weight: float = 1.0, cap: int | None = None):
        self.weight, self.cap = float(weight), cap
        self.name = f"exclaim(weight={weight:g}, cap={cap})"

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        n = np.array([c.count("!") for c in completions], dtype=np.float64)
        if self.cap is not None:
            n = np.minimum(n, self.cap)
        return self.weight * n


def exclaim_factory(**kwargs) -> Exclaim:
    """The entry point: goodhart calls it with the config's reward.kwargs."""
    return Exclaim(**kwargs)
