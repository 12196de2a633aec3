"""Tail diagnostics (eval/tails.py): the public wrapper."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from goodhart.eval.tails import TailReport


def tails(x: np.ndarray, level: float = 0.99, **options: Any) -> TailReport:
    """Is the upper tail of ``x`` heavier than every exponential (Kwa et al. 2024)? Returns a report
    whose ``.verdict`` is ``heavy``, ``light`` or ``inconclusive``, with every statistic and the
    rule in ``.table()``. Needs at least 500 values; other keywords go to
    goodhart.eval.tails.tail_verdict (``flat_tol``, ``gpd_quantile``, ``n_boot``, ``seed``, ...).

    ```pycon
    >>> import numpy as np
    >>> from goodhart import tails
    >>> rng = np.random.default_rng(0)
    >>> tails(rng.normal(size=20000)).verdict, tails(rng.pareto(1.5, size=20000)).verdict
    ('light', 'heavy')

    ```
    """
    from goodhart.eval.tails import tail_verdict

    return tail_verdict(np.asarray(x, dtype=np.float64).ravel(), level=level, **options)
