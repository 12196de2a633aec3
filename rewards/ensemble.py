"""Ensembles of k proxies and how they combine (Coste, Anwar, Kirk & Krueger 2023, "Reward Model
Ensembles Help Mitigate Overoptimization"):

* ``mean``: the average member. With independent errors of one law the mean keeps the tail
  index (a Pareto(alpha) stays index alpha; only the scale shrinks).
* ``min`` (worst-case optimization, WCO): the lowest member. The min of k independent
  Pareto(alpha) excesses is Pareto(k alpha): lighter, still heavy (polynomial) for any k.
* ``uwo`` (uncertainty-weighted optimization): mean - lam * std over members (Coste et al. use
  the variance; the standard deviation keeps the penalty in reward units). For k = 4 and lam = 1
  one large member x among three at 0 gives x(1 - sqrt 3)/4 < 0 and two give 0: the combination
  rises in the tail only when three members are large, so its tail index is 3 alpha.
* ``median``: the middle members' mean (k = 4: of the 2nd and 3rd largest); the 2nd largest
  exceeds x only when two members do, so the median's tail index is 2 alpha (k = 4).
* ``info``: not an ensemble but its information-matched baseline: one proxy whose independent
  error part is scaled by 1/sqrt(k) -- what k measurements of V are worth as one (for a Gaussian
  error exactly the law of the k members' mean).

A shared error component (``rho`` > 0): member j's error is sqrt(rho) S + sqrt(1 - rho) X_j with S
and the X_j independent draws of the one law (correlation rho where it has a variance). Real
ensembles share errors (reward models trained on the same comparisons); the min, mean or median
then keeps S's tail (index alpha) whatever k is.

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

COMBINES = ("mean", "min", "uwo", "median")
SHARED = "shared"
"""The shared component's name: its hash salt is `<salt>#shared` (text), its stream tagged by it."""


def combine(members: np.ndarray, how: str, lam: float = 1.0) -> np.ndarray:
    """members: shape (k, ...) -> the combined proxy, shape (...)."""
    m = np.asarray(members, dtype=np.float64)
    if how == "mean":
        return m.mean(0)
    if how == "min":
        return m.min(0)
    if how == "uwo":
        return m.mean(0) - lam * m.std(0)
    if how == "median":
        return np.median(m, axis=0)
    raise ValueError(f"ensemble combine must be one of {', '.join(COMBINES)}, not {how!r}")


def mix(independent: np.ndarray, shared: np.ndarray | None, rho: float, scale: float = 1.0) -> np.ndarray:
    """sqrt(rho) shared + sqrt(1 - rho) scale independent: a member's error with a shared part
    (scale 1/sqrt(k): the information-matched single proxy's)."""
    x = np.sqrt(1.0 - rho) * scale * np.asarray(independent, dtype=np.float64)
    return x if shared is None or rho == 0 else x + np.sqrt(rho) * np.asarray(shared, dtype=np.float64)


def member_salt(salt: str, j: int | str) -> str:
    """Member j's hash salt: member 0 is the error's own (and SHARED the shared component's)."""
    return salt if j == 0 else f"{salt}#{SHARED}" if j == SHARED else f"{salt}#member{j}"


def draw_shared(
    utility: Law, error: Law, n_prompts: int, n: int, seed: int, block: tuple[int, int] | None = None
) -> np.ndarray:
    """The shared error component S of a distributional ensemble: a draw of the error law from its
    own stream (keyed by the laws, as rewards.distributional.stream keys a pool's; a grown pool's
    block by its block too)."""
    from goodhart.rewards.distributional import law_key

    tag = int.from_bytes(SHARED.encode(), "little")
    extra = [] if block is None else [int(block[0]), int(block[1])]
    rng = np.random.default_rng([seed % 2**64, law_key(utility), law_key(error), tag, *extra])
    return error.sample((n_prompts, n), rng)


def draw_members(
    utility: Law,
    error: Law,
    n_prompts: int,
    n: int,
    seed: int,
    k: int,
    block: tuple[int, int] | None = None,
    rho: float = 0.0,
) -> dict[str, np.ndarray]:
    """Distributional ensemble: V and member 0's independent error exactly as
    rewards.distributional.draw draws them (same seed), members 1..k-1 with independent errors from
    their own seeds [seed, j] (a grown pool's block: [seed, j, group, range]); with rho > 0 each
    mixed with the shared component (draw_shared)."""
    from goodhart.rewards.distributional import draw

    base = draw(utility, error, n_prompts, n, seed, block)
    extra = [] if block is None else [int(block[0]), int(block[1])]
    xs = [base["error"]] + [error.sample((n_prompts, n), np.random.default_rng([seed, j, *extra])) for j in range(1, k)]
    s = draw_shared(utility, error, n_prompts, n, seed, block) if rho > 0 else None
    return {"utility": base["utility"], "members": base["utility"][None] + np.stack([mix(x, s, rho) for x in xs])}


def draw_info(
    utility: Law,
    error: Law,
    n_prompts: int,
    n: int,
    seed: int,
    k: int,
    rho: float = 0.0,
    block: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """The information-matched single proxy of a k-member ensemble: V + sqrt(rho) S +
    sqrt((1 - rho)/k) X_0, with V, X_0 the single proxy's draw and S the ensemble's shared part."""
    from goodhart.rewards.distributional import draw

    base = draw(utility, error, n_prompts, n, seed, block)
    s = draw_shared(utility, error, n_prompts, n, seed, block) if rho > 0 else None
    err = mix(base["error"], s, rho, 1.0 / np.sqrt(k))
    return {"utility": base["utility"], "error": err, "proxy": base["utility"] + err}


class SyntheticEnsemble:
    """k proxies utility + X_j, one error field per member, combined by `how`; with `shared` and
    rho > 0 each member's error is mix(X_j, S, rho). how = "info": the information-matched single
    proxy V + mix(X_0, S, rho, 1/sqrt(k)) (no members)."""

    def __init__(
        self,
        utility: Reward,
        errors: Sequence[SyntheticError],
        how: str,
        lam: float = 1.0,
        shared: SyntheticError | None = None,
        rho: float = 0.0,
    ):
        if how not in (*COMBINES, "info"):
            raise ValueError(f"ensemble combine must be one of {', '.join(COMBINES)} or info, not {how!r}")
        if rho > 0 and shared is None:
            raise ValueError("a shared error component (rho > 0) needs its error field")
        self.utility, self.errors, self.how, self.lam = utility, list(errors), how, lam
        self.shared, self.rho = (shared if rho > 0 else None), rho
        self.error = self.errors[0]
        self.name = f"{how}{len(self.errors)}[{utility.name}+{self.error.name}]" + (f"(rho={rho:g})" if rho else "")

    @property
    def fields(self) -> list[SyntheticError]:
        """Every error field scored (the members' and the shared one): feature mode fits each."""
        return self.errors + ([self.shared] if self.shared is not None else [])

    def components(self, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, np.ndarray]:
        v = self.utility.score(prompts, completions)
        s = self.shared.score(prompts, completions) if self.shared is not None else None
        if self.how == "info":
            err = mix(self.error.score(prompts, completions), s, self.rho, 1.0 / np.sqrt(len(self.errors)))
            proxy = checked(self.name, v + err, prompts, completions)
            return {"utility": v, "error": proxy - v, "proxy": proxy}
        members = np.stack([v + mix(e.score(prompts, completions), s, self.rho) for e in self.errors])
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
