"""A pool that grows without redrawing what it has: blocks of prompts x sample ranges.

A first pass holds P0 prompts x N0 samples. Resolve rounds (pipeline/report/resolve.py) double
the prompts or the samples per prompt; the grown pool (P prompts, N samples, P a multiple of P0,
N = N0 x 2^k) is the union of blocks

    prompt group g = prompts [g P0, (g + 1) P0)       sample range r: [0, N0), [N0, 2 N0),
                                                                     [2 N0, 4 N0), ...

Block (0, 0) is the first pass itself, drawn exactly as it was (same seed, same cache entry);
every other block is drawn from its own seed (block_seed), independently of the others. So any
smaller pool of the sequence is a prefix of a bigger one: the first N samples of a prompt are the
same draws, and points are recomputed from the bigger pool without redrawing anything. Extra eval
prompts are taken after the train prompts (base/prompts.py), so the train set, a feature error's
calibration and a trained policy are unchanged by the growth.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    group: int
    """Prompt group g: prompts [p0, p1)."""
    rng: int
    """Sample range r: samples [s0, s1) of each prompt."""
    p0: int
    p1: int
    s0: int
    s1: int

    @property
    def first(self) -> bool:
        """The first pass's own block (its draws and cache entry unchanged)."""
        return self.group == 0 and self.rng == 0


def sample_ranges(n0: int, n: int) -> list[tuple[int, int]]:
    """[0, n0), [n0, 2 n0), [2 n0, 4 n0), ... up to n (= n0 x 2^k)."""
    out, lo, hi = [(0, n0)], n0, 2 * n0
    while lo < n:
        out.append((lo, hi))
        lo, hi = hi, 2 * hi
    if out[-1][1] != n:
        raise ValueError(f"a grown pool has {n0} x 2^k samples per prompt, not {n}")
    return out


def blocks(p0: int, n0: int, p: int, n: int) -> list[Block]:
    """Every block of a pool of p prompts x n samples grown from p0 x n0."""
    if p % p0 or p < p0:
        raise ValueError(f"a grown pool has a multiple of {p0} prompts, not {p}")
    return [
        Block(g, r, g * p0, (g + 1) * p0, s0, s1)
        for g in range(p // p0)
        for r, (s0, s1) in enumerate(sample_ranges(n0, n))
    ]


def block_seed(seed: int, b: Block) -> int:
    """The seed of a block: the first pass's own for block (0, 0), else a stable 31-bit number
    from (seed, group, range) (not Python's salted hash), away from seed + 1 (calibration)."""
    if b.first:
        return seed
    h = hashlib.sha256(f"grow:{seed}:{b.group}:{b.rng}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF
