"""Verdicts with gold (eval/goodhart.py) and finished sweeps (pipeline/report/): the public wrappers.

The rule itself lives in goodhart.eval.goodhart; this module only fixes the public call shapes, so
the rule can change behind them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from goodhart.eval import goodhart as _rule

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from goodhart.pipeline.report.verdicts import Report


class VerdictRule(_rule.VerdictRule):
    """The thresholds of the verdict rule (eval/goodhart.py; docs/concepts.md).

    Fields (all keyword): ``ci`` (interval level), ``near_base`` (equivalence margin, a fraction of
    the peak's utility gain), ``share_floor`` (a utility share below this fraction of best-of-2's
    has collapsed), ``min_proxy_gain``, ``zero_tol``.

    ```pycon
    >>> from goodhart import VerdictRule
    >>> VerdictRule(near_base=0.2).near_base
    0.2

    ```
    """


def label_points(
    points: pd.DataFrame,
    rule: _rule.VerdictRule | None = None,
    units: dict[str, dict[str, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Label every point of a sweep table: ``baseline``, ``improving``, ``over-optimized``,
    ``unresolved`` or ``catastrophic``, each with ``why`` (the numbers behind it).

    ``points``: one row per point with columns ``kl``, ``gain/proxy``, ``gain/utility`` (and their
    ``/lo`` ``/hi`` interval bounds), ``algo``, ``x_name``, ``x``; optionally ``point_id``, ``seed``,
    the curve columns and flags (see goodhart.eval.goodhart). ``units``: per-prompt gains
    ``{point_id: {"gain_proxy": (P,), "gain_utility": (P,)}}`` for comparisons paired on prompts.
    Returns one row per (curve, algo, knob), seeds pooled, sorted along KL.

    ```pycon
    >>> import pandas as pd
    >>> from goodhart import label_points
    >>> pts = pd.DataFrame({"algo": "tilt", "x_name": "kl.coef", "x": [3.0, 1.0, 0.3, 0.1],
    ...     "kl": [0.1, 0.5, 2.0, 5.0],
    ...     "gain/proxy": [0.4, 1.0, 3.0, 9.0], "gain/proxy/lo": [0.3, 0.8, 2.5, 8.0],
    ...     "gain/proxy/hi": [0.5, 1.2, 3.5, 10.0],
    ...     "gain/utility": [0.3, 0.6, 0.5, 0.01], "gain/utility/lo": [0.2, 0.5, 0.4, -0.03],
    ...     "gain/utility/hi": [0.4, 0.7, 0.6, 0.05]})
    >>> label_points(pts)["verdict"].tolist()
    ['improving', 'improving', 'unresolved', 'catastrophic']

    ```
    """
    return _rule.label_points(points, rule if rule is not None else _rule.VerdictRule(), units)


def load_results(path: str | Path) -> pd.DataFrame:
    """The results table of a finished (or running) sweep: one row per point, as ``results.csv``.

    ``path``: a sweep directory (with points.json, read fresh from the points), or a results
    ``.csv`` / ``.parquet`` file.

    ```pycon
    >>> import tempfile, pathlib, pandas as pd
    >>> from goodhart import load_results
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"point_id": ["a"], "status": ["done"], "kl": [0.5]}).to_csv(d / "results.csv", index=False)
    >>> load_results(d)["kl"].tolist()
    [0.5]

    ```
    """
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        if (p / "points.json").is_file():
            from goodhart.pipeline.sweeps.record import results_table

            return results_table(p)
        for name in ("results.parquet", "results.csv"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise FileNotFoundError(f"{path} is not a sweep directory (no points.json, no results.csv)")
    if not p.is_file():
        raise FileNotFoundError(f"no such file or sweep directory: {path}")
    return pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)


def report(sweep: str | Path, rule: _rule.VerdictRule | None = None, out_dir: str | Path | None = None) -> Report:
    """`goodhart report SWEEP` as a function: verdicts, alarm, fits, tails, plots, report.md and
    report.html (in ``out_dir``, default SWEEP/report). Returns the report: ``.labelled`` (the
    verdict table), ``.groups`` (one summary per curve), ``.verdict``, ``.files``.

    ```pycon
    >>> import tempfile, pathlib, pandas as pd
    >>> from goodhart import report
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"point_id": ["p1", "p2"], "status": "done", "algo": "bon", "x_name": "n", "x": [1, 4],
    ...     "error_law": "gaussian", "kl": [0.0, 0.64], "gain/proxy": [0.0, 1.4], "gain/proxy/lo": [0.0, 1.2],
    ...     "gain/proxy/hi": [0.0, 1.6], "gain/utility": [0.0, 0.7], "gain/utility/lo": [0.0, 0.5],
    ...     "gain/utility/hi": [0.0, 0.9], "reward/proxy": [0.0, 1.4], "reward/utility": [0.0, 0.7],
    ...     }).to_csv(d / "results.csv", index=False)
    >>> rep = report(d)
    >>> rep.labelled["verdict"].tolist(), rep.verdict
    (['baseline', 'improving'], 'no-catastrophe')

    ```
    """
    from goodhart.pipeline.report.verdicts import build_report

    return build_report(
        Path(sweep), rule if rule is not None else _rule.VerdictRule(), Path(out_dir) if out_dir else None
    )
