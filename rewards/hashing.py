"""Deterministic uniforms from text: the same text always gets the same number, in any process."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

_TWO_53 = float(2**53)


def text_uniform(texts: Iterable[str], salt: str) -> np.ndarray:
    """u in (0, 1) per text from blake2b(salt, text): 53 bits, so u is never 0 or 1.

    Python's own ``hash()`` is salted per process (PYTHONHASHSEED); blake2b is not."""
    key = salt.encode()[:64]
    out = []
    for t in texts:
        h = hashlib.blake2b(t.encode("utf-8"), digest_size=8, key=key).digest()
        out.append(((int.from_bytes(h, "little") >> 11) + 0.5) / _TWO_53)
    return np.asarray(out, dtype=np.float64)
