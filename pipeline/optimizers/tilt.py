"""`tilt`: the exact KL-regularised optimum pi_beta ~ pi_0 exp(proxy / beta), on the base pool.

The math is eval.tilt (self-normalised weights, KL <= log N, ESS); this file puts it on the
sweep's KL axis and flags points that cannot be trusted: `low-ESS` (the estimate rests on a
handful of samples) and `pool-dependent` (re-estimated on the nested sub-pools N/4 and N/2 of the
same prompts, it drifts with N beyond its own interval: for a heavy-tailed proxy E[exp(U/beta)]
is infinite, the population optimum does not exist, and the pool size decides what is shown,
even while the ESS looks fine)."""

from __future__ import annotations

import warnings

import numpy as np

from goodhart.eval import metrics as M
from goodhart.eval.alarm import tilt_alarm
from goodhart.eval.tilt import log_weights, tilt
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput, summarize


class LowESSWarning(UserWarning):
    """A tilt point rests on too few effective samples."""


class PoolDependentWarning(UserWarning):
    """A tilt point's estimate changes with the pool size beyond its interval."""


def subpool_drift(proxy: np.ndarray, utility: np.ndarray, beta: float, ci: float) -> dict[str, float]:
    """Drift of the tilted means between the nested sub-pool N/4 (the first N/4 samples of each
    prompt) and the full pool N, paired per prompt, with its interval; and the N/2 estimate."""
    from goodhart.eval.bootstrap import t_ci

    N = proxy.shape[1]
    full = tilt(proxy, beta, utility=utility)
    out: dict[str, float] = {}
    for q, name in ((4, "q"), (2, "h")):
        sub = tilt(proxy[:, : max(N // q, 1)], beta, utility=utility[:, : max(N // q, 1)])
        for k in ("proxy", "utility"):
            m, lo, hi = t_ci(full[k] - sub[k], ci)
            out[f"{k}/{name}"], out[f"{k}/{name}/lo"], out[f"{k}/{name}/hi"] = m, lo, hi
    return out


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
    if cfg.eval.subpool_check and N >= 8:
        d = subpool_drift(pool.proxy, pool.utility, beta, cfg.eval.ci)
        row[M.TILT_DRIFT_PROXY], row[M.TILT_DRIFT_UTILITY] = d["proxy/q"], d["utility/q"]
        # Drift beyond the point's own interval half-width, and the drift itself significant
        # (paired over prompts), on the proxy or the utility: N decides what this point shows.
        dep = []
        for k, name in (("proxy", M.GAIN_PROXY), ("utility", M.GAIN_UTILITY)):
            half = (row[M.hi(name)] - row[M.lo(name)]) / 2
            sig = d[f"{k}/q/lo"] > 0 or d[f"{k}/q/hi"] < 0
            if sig and abs(d[f"{k}/q"]) > half:
                dep.append(f"{k} {d[f'{k}/q']:+.3g} from N/4 to N (interval half-width {half:.3g})")
        row[M.POOL_DEPENDENT] = bool(dep)
        if dep:
            warnings.warn(
                f"tilt beta={beta:g}: pool-dependent, the estimate drifts with the pool size: {'; '.join(dep)}",
                PoolDependentWarning,
                stacklevel=2,
            )
    row.update(tilt_alarm(pool.proxy, beta, row[M.KL]).row())  # proxy + KL + base pool only (eval/alarm.py)
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
