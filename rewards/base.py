"""The one reward interface: ``score(prompts, completions) -> np.ndarray[float]``.

Proxy rewards and true utilities are the same kind of object. Every reward's output goes
through :func:`checked` so a wrong length, a NaN or an inf stops the run with the reward's
name and the offending example, instead of poisoning a mean three steps later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


class RewardError(Exception):
    """A reward misbehaved (wrong length, NaN, inf, failed to load): the message says which."""


@runtime_checkable
class Reward(Protocol):
    name: str

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray: ...


def checked(name: str, values: Any, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
    """Validate one batch of scores: one finite float per completion."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise RewardError(f"reward '{name}' returned something that is not a list of numbers ({e})") from None
    if arr.shape[0] != len(completions):
        raise RewardError(f"reward '{name}' returned {arr.shape[0]} scores for {len(completions)} completions")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise RewardError(
            f"reward '{name}' returned {arr[i]} for example {i} "
            f"(prompt {_short(prompts[i] if i < len(prompts) else '')!r}, completion {_short(completions[i])!r}); "
            f"{bad.size} non-finite score(s) in this batch"
        )
    huge = np.flatnonzero(np.abs(arr) > MAX_ABS_SCORE)
    if huge.size:
        i = int(huge[0])
        raise RewardError(
            f"reward '{name}' returned {arr[i]:.3g} for example {i} "
            f"(completion {_short(completions[i])!r}): scores beyond +-{MAX_ABS_SCORE:g} overflow means, variances "
            "and gains; rescale the reward"
        )
    return arr


# Scores this large overflow a mean of N of them, a variance or a difference in float64: a reward
# that gives them stops the run at once, naming itself, instead of yielding inf and NaN later.
MAX_ABS_SCORE = 1e150


def check_array(name: str, values: Any) -> np.ndarray:
    """Validate scores that have no texts (drawn from laws): finite, and below MAX_ABS_SCORE."""
    arr = np.asarray(values, dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise RewardError(
            f"reward '{name}' gave {bad} non-finite value(s) (nan/inf) of {arr.size}; check its law and scale"
        )
    top = float(np.abs(arr).max()) if arr.size else 0.0
    if top > MAX_ABS_SCORE:
        raise RewardError(
            f"reward '{name}' gave a value of magnitude {top:.3g}: beyond +-{MAX_ABS_SCORE:g} means, variances and "
            "gains overflow; use a smaller scale (or a lighter law)"
        )
    return arr


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


class FunctionReward:
    """Wrap ``f(prompts, completions, **kwargs) -> floats`` (TRL's reward-function shape)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **kwargs: Any):
        self.fn, self.kwargs = fn, kwargs
        self.name = name or getattr(fn, "__name__", "function")

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return checked(self.name, self.fn(list(prompts), list(completions), **self.kwargs), prompts, completions)


def as_reward(obj: Any, name: str) -> Reward:
    """A Reward as is; a bare callable wrapped in FunctionReward."""
    if hasattr(obj, "score") and callable(obj.score):
        if not getattr(obj, "name", None):
            obj.name = name
        return obj
    if callable(obj):
        return FunctionReward(obj, name=name)
    raise RewardError(f"'{name}' is neither a reward (with .score) nor a callable, but {type(obj).__name__}")
