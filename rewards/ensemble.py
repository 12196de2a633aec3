"""Ensembles of k proxies and how they combine (Coste, Anwar, Kirk & Krueger 2023, "Reward Model
Ensembles Help Mitigate Overoptimization"):

* ``mean``: the average member. With independent errors of one law the mean keeps the tail
  index (a Pareto(alpha) stays index alpha; only the scale shrinks).
* ``min`` (worst-case optimization, WCO): the lowest member. The min of k independent
  Pareto(alpha) excesses is Pareto(k alpha): lighter, still heavy (polynomial) for any k.
* ``uwo`` (uncertainty-weighted optimization): mean - lam * std over members (Coste et al. use
  the variance; the standard deviation keeps the penalty in reward units).

Synthetic members draw independent errors: one hash salt per member for text (member 0 keeps
the error's own salt, so it *is* the single-proxy error), one seed per member for laws. A learned
ensemble (``RewardEnsemble``) combines k reward models -- e.g. reward models trained with k
seeds -- whose errors are whatever their training left them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from goodhart.rewards.base import Reward, checked
from goodhart.rewards.laws import Law
from goodhart.rewards.synthetic import SyntheticError

COMBINES = ("mean", "min", "uwo")


def combine(members: np.ndarray, how: str, lam: float = 1.0) -> np.ndarray:
    """members: shape (k, ...) -> the combined proxy, shape (...)."""
    m = np.asarray(members, dtype=np.float64)
    if how == "mean":
        return m.mean(0)
    if how == "min":
        return m.min(0)
    if how == "uwo":
        return m.mean(0) - lam * m.std(0)
    raise ValueError(f"ensemble combine must be one of {', '.join(COMBINES)}, not {how!r}")


def member_salt(salt: str, j: int) -> str:
    """Member j's hash salt: member 0 is the error's own."""
    return salt if j == 0 else f"{salt}#member{j}"


def draw_members(
    utility: Law, error: Law, n_prompts: int, n: int, seed: int, k: int, block: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """Distributional ensemble: V and member 0's error exactly as rewards.distributional.draw
    draws them (same seed), members 1..k-1 with errors from their own seeds [seed, j] (a grown
    pool's block: [seed, j, group, range])."""
    from goodhart.rewards.distributional import draw

    base = draw(utility, error, n_prompts, n, seed, block)
    extra = [] if block is None else [int(block[0]), int(block[1])]
    xs = [base["error"]] + [error.sample((n_prompts, n), np.random.default_rng([seed, j, *extra])) for j in range(1, k)]
    return {"utility": base["utility"], "members": base["utility"][None] + np.stack(xs)}


class SyntheticEnsemble:
    """k proxies utility + X_j, one error field per member, combined by `how`."""

    def __init__(self, utility: Reward, errors: Sequence[SyntheticError], how: str, lam: float = 1.0):
        if how not in COMBINES:
            raise ValueError(f"ensemble combine must be one of {', '.join(COMBINES)}, not {how!r}")
        self.utility, self.errors, self.how, self.lam = utility, list(errors), how, lam
        self.error = self.errors[0]
        self.name = f"{how}{len(self.errors)}[{utility.name}+{self.error.name}]"

    def components(self, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, np.ndarray]:
        v = self.utility.score(prompts, completions)
        members = np.stack([v + e.score(prompts, completions) for e in self.errors])
        proxy = checked(self.name, combine(members, self.how, self.lam), prompts, completions)
        return {"utility": v, "members": members, "error": proxy - v, "proxy": proxy}

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return self.components(prompts, completions)["proxy"]


class RewardEnsemble:
    """k reward models scored on the same text, combined by `how` (a learned ensemble: no
    utility of its own; the run's `utility:` config is the gold)."""

    def __init__(self, members: Sequence[Reward], how: str, lam: float = 1.0):
        if how not in COMBINES:
            raise ValueError(f"ensemble combine must be one of {', '.join(COMBINES)}, not {how!r}")
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members, self.how, self.lam = list(members), how, lam
        self.name = f"{how}{len(self.members)}[" + ",".join(m.name for m in self.members) + "]"

    def components(self, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, np.ndarray]:
        members = np.stack([np.asarray(m.score(prompts, completions), dtype=np.float64) for m in self.members])
        return {
            "members": members,
            "proxy": checked(self.name, combine(members, self.how, self.lam), prompts, completions),
        }

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        return self.components(prompts, completions)["proxy"]
