"""Turn per-prompt estimates into one result row with bootstrap intervals over prompts.

Gains are paired: each prompt's estimate minus the same prompt's base-policy mean, so the
between-prompt spread of utility does not widen the gain's interval. The per-prompt arrays
travel with the row under PER_PROMPT (the point's record saves them to per_prompt.npz) so
that reports can compare points paired on the same prompts."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from goodhart.eval import metrics as M
from goodhart.pipeline.config.schema import RunConfig

PER_PROMPT = "per_prompt"  # row key of the per-prompt arrays; popped and saved by the point's record


def summarize(
    cfg: RunConfig,
    proxy: np.ndarray,
    utility: np.ndarray,
    kl: np.ndarray,
    base_proxy: np.ndarray,
    base_utility: np.ndarray,
    kl_estimator: str,
    holdout: np.ndarray | None = None,
    base_holdout: np.ndarray | None = None,
) -> dict[str, Any]:
    """All arguments but cfg and kl_estimator are per-prompt arrays of shape (P,). `holdout` and
    `base_holdout`: the held-out proxy's per-prompt means under the policy and the base (eval.holdout;
    eval/holdout.py): its paired gain is the utility gain estimated without gold."""
    # (here: the tables that import this module's formatting need no scipy.stats)
    from goodhart.eval.bootstrap import interval, resample_indices

    P = proxy.shape[0]
    method = cfg.eval.interval if cfg.eval.bootstrap else "none"  # bootstrap=0: no intervals
    idx = resample_indices(P, cfg.eval.bootstrap, cfg.seed) if method == "bootstrap" else None
    row: dict[str, Any] = {}
    for name, per in (
        (M.PROXY, proxy),
        (M.UTILITY, utility),
        (M.GAIN_PROXY, proxy - base_proxy),
        (M.GAIN_UTILITY, utility - base_utility),
        (M.KL, kl),
    ):
        row[name], row[M.lo(name)], row[M.hi(name)] = interval(per, method, cfg.eval.ci, idx)
    if holdout is not None and base_holdout is not None:
        for name, per in (
            (M.HOLDOUT, holdout),
            (M.GAIN_HOLDOUT, holdout - base_holdout),
            (M.HOLDOUT_ERROR_GAIN, (proxy - base_proxy) - (holdout - base_holdout)),
        ):
            row[name], row[M.lo(name)], row[M.hi(name)] = interval(per, method, cfg.eval.ci, idx)
        row[M.BASE_HOLDOUT] = float(np.mean(base_holdout))
    row[M.ERROR] = row[M.PROXY] - row[M.UTILITY]
    row[M.BASE_PROXY] = float(np.mean(base_proxy))
    row[M.BASE_UTILITY] = float(np.mean(base_utility))
    row[M.KL_ESTIMATOR] = kl_estimator
    row[M.N_PROMPTS] = int(P)
    row[M.INTERVAL_METHOD] = method
    row[M.CI_LEVEL] = cfg.eval.ci
    row[PER_PROMPT] = {
        "proxy": np.asarray(proxy, dtype=np.float64),
        "utility": np.asarray(utility, dtype=np.float64),
        "base_proxy": np.asarray(base_proxy, dtype=np.float64),
        "base_utility": np.asarray(base_utility, dtype=np.float64),
        "kl": np.asarray(kl, dtype=np.float64),
    }
    if holdout is not None and base_holdout is not None:
        row[PER_PROMPT]["holdout"] = np.asarray(holdout, dtype=np.float64)
        row[PER_PROMPT]["base_holdout"] = np.asarray(base_holdout, dtype=np.float64)
    return row


def _best_of_2(proxy: np.ndarray, utility: np.ndarray) -> dict[str, np.ndarray]:
    """best_of_n(proxy, 2, utility=utility) from the pool in proxy order, sorted once per pool and
    process (pool_memo: the same sort the best-of-n points read)."""
    from goodhart.eval.bon import best_of_n, sorted_by_proxy
    from goodhart.pipeline.base.pool import pool_memo

    srt = pool_memo(sorted_by_proxy, proxy, utility)
    return best_of_n(proxy, 2, presorted={"proxy": srt[0], "utility": srt[1]})


def base_share2(proxy: np.ndarray, utility: np.ndarray) -> float:
    """Utility share of the proxy gain under the gentlest selection, best-of-2 on the base pool
    (shape (P, N)): sum over prompts of gain(utility) / sum of gain(proxy), exact from the pool.
    The reference against which a collapsed share (the catastrophic signature) is judged; nan
    when best-of-2 gains no proxy (a constant proxy)."""
    if proxy.shape[-1] < 2:
        return float("nan")
    est = _best_of_2(proxy, utility)
    gp = float(np.mean(est["proxy"] - proxy.mean(-1)))
    gu = float(np.mean(est["utility"] - utility.mean(-1)))
    return gu / gp if gp > 0 else float("nan")


def base_gain2(proxy: np.ndarray, utility: np.ndarray) -> tuple[float, float, float]:
    """Utility gain of best-of-2 by proxy on a base pool (P, N), with its t interval over prompts:
    the near-base floor of the verdict rule (what the gentlest selection by this proxy buys)."""
    from goodhart.eval.bootstrap import t_ci

    if proxy.shape[-1] < 2:
        return (float("nan"),) * 3
    est = _best_of_2(proxy, utility)
    return t_ci(est["utility"] - utility.mean(-1))


def error_utility_corr(error: np.ndarray, utility: np.ndarray) -> float:
    """Pearson correlation of error and utility over all base samples (nan if either is constant)."""
    e, u = np.ravel(error), np.ravel(utility)
    if e.std() == 0 or u.std() == 0:
        return float("nan")
    return float(np.corrcoef(e, u)[0, 1])


@dataclass
class PointOutput:
    """What an optimizer returns: its result row and a few example completions."""

    row: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)


StepLogger = Callable[[dict[str, float], int], None]


# ---------------------------------------------------------------------------------------------
# A summary row as text: the one formatting of numbers and intervals (terminal tables, the
# report, the exported model card)
# ---------------------------------------------------------------------------------------------
def number_text(v: Any) -> str:
    """A table cell: floats to 3 decimals (3 significant digits when very large or small), NaN as '-'."""
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if abs(v) < 1e-12:  # rounding residue of an exact zero (n=1 gains, KL of the base)
            v = 0.0
        return f"{v:.3g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.3f}"
    return str(v)


def ci_text(row: dict, name: str) -> str:
    """`m [lo, hi]` of row's `name` (just `m` without bounds, '-' without a value)."""
    m, lo, hi = row.get(name), row.get(M.lo(name)), row.get(M.hi(name))
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "-"
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return number_text(float(m))
    return f"{number_text(float(m))} [{number_text(float(lo))}, {number_text(float(hi))}]"


def interval_method_text(method: str | None, ci: float, resamples: int) -> str:
    """How a row's intervals were made, in words (`method` is its M.INTERVAL_METHOD)."""
    if method == "t":
        return f"{ci:.0%} Student-t intervals over prompts"
    if method == "bootstrap":
        return f"{ci:.0%} percentile-bootstrap intervals over prompts ({resamples} resamples)"
    if method == "none":
        return "no intervals (eval.bootstrap = 0)"
    return "intervals of an unrecorded method (a result written before interval_method)"
