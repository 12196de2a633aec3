"""No language model: utility V and error X drawn straight from named laws, independent.

This is Kwa et al.'s synthetic best-of-n setting; it lets every optimizer and statistic be
checked against closed forms (a Gaussian tilt's mean shift, E[max of n normals]).

Random streams. A pool is a function of (utility law, error law, prompts, samples, seed): every
point of a sweep that shares those shares the pool, so comparisons along a curve (paired drops
from a peak, one optimizer against another) use common random numbers. Different laws at the
same seed draw from independent streams (the laws' parameters are hashed into the seed): with
one stream per seed, pareto(1.5) and lognormal(1.5) at one seed were the same trial through a
monotone map, and coverage measured across laws counted correlated trials as
independent ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import astuple

import numpy as np

from goodhart.rewards.laws import Law

STREAM_VERSION = 2
"""1: one stream per seed, shared by every law; 2: one stream per (seed, utility law, error law)."""


def law_key(law: Law) -> int:
    """A stable 64-bit number for a law's parameters (not Python's salted hash)."""
    return int.from_bytes(hashlib.sha256(repr(astuple(law)).encode()).digest()[:8], "little")


def stream(seed: int, *laws: Law, block: tuple[int, int] | None = None) -> np.random.Generator:
    """The random stream of these laws at this seed: the same laws and seed give the same
    numbers; other laws at the same seed are independent of them. `block` (prompt group, sample
    range) of a grown pool (pipeline/base/grow.py): a stream of its own, independent of the first
    pass's and of every other block's."""
    extra = [] if block is None else [int(block[0]), int(block[1])]
    return np.random.default_rng([seed % 2**64, *(law_key(law) for law in laws), *extra])


def draw(
    utility: Law, error: Law, n_prompts: int, n: int, seed: int, block: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """Arrays of shape (n_prompts, n): utility, error and proxy = utility + error (`block`: one
    block of a grown pool, from its own stream)."""
    rng = stream(seed, utility, error, block=block)
    v = utility.sample((n_prompts, n), rng)
    x = error.sample((n_prompts, n), rng)
    return {"utility": v, "error": x, "proxy": v + x}
