"""`tilt`: the exact KL-regularised optimum pi_beta ~ pi_0 exp(proxy / beta), on the base pool.

The math is eval.tilt (self-normalised weights, KL <= log N, ESS); this file puts it on the
sweep's KL axis and flags points whose ESS is too small to trust."""

from __future__ import annotations

import warnings

import numpy as np

from goodhart.eval import metrics as M
from goodhart.eval.tilt import log_weights, tilt
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput, summarize


class LowESSWarning(UserWarning):
    """A tilt point rests on too few effective samples."""


def run(ctx: PointContext) -> PointOutput:
    cfg, pool = ctx.cfg, ctx.pool()
    beta = cfg.algo.kl.coef
    est = tilt(pool.proxy, beta, utility=pool.utility)
    row = summarize(
        cfg,
        est["proxy"],
        est["utility"],
        est["kl"],
        pool.proxy.mean(1),
        pool.utility.mean(1),
        kl_estimator="tilt_snis",  # sum_i w_i log(N w_i) over the pool; <= log N
    )
    P, N = pool.shape
    row.update(
        {
            M.TILT_BETA: beta,
            M.TILT_ESS: float(est["ess"].mean()),
            M.TILT_ESS_MIN: float(est["ess"].min()),
            M.KL_MAX: float(np.log(N)),
            M.N_SAMPLES: N,
            M.TILT_ESS_OK: bool(est["ess"].min() >= cfg.eval.min_ess),
        }
    )
    if not row[M.TILT_ESS_OK]:
        warnings.warn(
            f"tilt beta={beta:g}: worst-prompt ESS {row[M.TILT_ESS_MIN]:.1f} < goodhart.eval.min_ess={cfg.eval.min_ess:g}; "
            f"the estimate rests on a handful of samples and its KL is capped at log N = {np.log(N):.2f}",
            LowESSWarning,
            stacklevel=2,
        )
    return PointOutput(row, _examples(pool, beta, cfg.eval.n_examples))


def _examples(pool, beta: float, k: int) -> list[dict]:
    """The highest-weight sample of the first k prompts."""
    if pool.completions is None or k == 0:
        return []
    w = np.exp(log_weights(pool.proxy, beta))
    out = []
    for i in range(min(k, len(pool.completions))):
        j = int(np.argmax(w[i]))
        out.append(
            {
                "prompt": pool.prompts[i],
                "completion": pool.completions[i][j],
                "weight": float(w[i, j]),
                "proxy": float(pool.proxy[i, j]),
                "utility": float(pool.utility[i, j]),
            }
        )
    return out
