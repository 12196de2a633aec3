"""`bon`: best-of-n by proxy, from the base pool with the unbiased order-statistic estimator.

KL: the analytic bound log n - (n-1)/n (exact for continuous rewards without ties). When the
pool has ties the bound is loose, and we report min(bound, plug-in estimate from the pool).

`algo.kl.target` (matched KL): best-of-n with a real n, the maximum of n draws with
replacement from the pool (eval/bon.py best_of_n_power), n solved so that its KL on the pool
equals the target; at or beyond log N the argmax. Its KL is the plug-in on the pool, as the tilts'."""

from __future__ import annotations

import warnings

import numpy as np

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule, bon_alarm
from goodhart.eval.bon import best_of_n, kl_bound, sorted_by_proxy
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput, summarize
from goodhart.pipeline.base.pool import pool_memo


class WidePoolWarning(UserWarning):
    """Best-of-n with n > N/4: the order-statistic estimator uses few draws per prompt."""


def run(ctx: PointContext) -> PointOutput:
    cfg, pool, ho = ctx.cfg, ctx.pool(), ctx.holdout()
    if cfg.algo.kl.target is not None:
        return _matched(cfg, pool, ctx.alarm_rule, ho)
    n = cfg.algo.n
    P, N = pool.shape
    if 4 * n > N:
        warnings.warn(
            f"best-of-n n={n} from a pool of N={N} per prompt (n > N/4): each prompt's estimate rests "
            f"on a few draws and the interval is much wider; keep n <= N/4 (raise sampling.n)",
            WidePoolWarning,
            stacklevel=2,
        )
    extra = {"holdout": ho.values} if ho is not None else {}  # the held-out proxy, weighted alike
    # the pool in proxy order is the same for every n: sorted once per pool (pool_memo, on disk)
    srt = pool_memo(sorted_by_proxy, pool.proxy, pool.utility, *extra.values())
    est = best_of_n(pool.proxy, n, presorted=dict(zip(["proxy", "utility", *extra], srt)))
    bound = kl_bound(n)
    tied = float(est["tied"].mean())
    if tied > 0:
        kl, name = np.clip(est["kl_pool"], 0.0, bound), "bon_pool_min_bound"
    else:
        kl, name = np.full(P, bound), "bon_bound"
    row = summarize(
        cfg,
        est["proxy"],
        est["utility"],
        kl,
        pool.proxy.mean(1),
        pool.utility.mean(1),
        name,
        holdout=est.get("holdout"),
        base_holdout=ho.values.mean(1) if ho is not None else None,
    )
    row.update({M.BON_N: n, M.KL_BOUND: bound, M.KL_MAX: float(np.log(N)), M.N_SAMPLES: N, M.BON_TIED: tied})
    if cfg.eval.alarm:
        row.update(_alarm(pool, n, row[M.KL], ctx.alarm_rule))  # proxy + KL + base pool only (eval/alarm.py)
    return PointOutput(row, _examples(pool, n, cfg.eval.n_examples))


def _matched(cfg, pool, rule: AlarmRule, ho=None) -> PointOutput:
    """Best-of-n with a real n at the KL target (with replacement from the pool: eval/bon.py)."""
    from goodhart.eval.bon import best_of_n_power, n_for_kl

    P, N = pool.shape
    target = float(cfg.algo.kl.target)
    n = n_for_kl(N, target, pool.proxy)  # without ties the KL depends on the ranks only
    est = best_of_n_power(pool.proxy, n, utility=pool.utility)
    row = summarize(
        cfg,
        est["proxy"],
        est["utility"],
        est["kl"],
        pool.proxy.mean(1),
        pool.utility.mean(1),
        "bon_power_pool",
        # the held-out proxy under the same weights (eval.holdout)
        holdout=(est["w"] * ho.values).mean(1) if ho is not None else None,
        base_holdout=ho.values.mean(1) if ho is not None else None,
    )
    row.update(
        {
            M.BON_N: n if np.isfinite(n) else float("nan"),  # nan: the argmax (n -> inf)
            M.KL_TARGET: target,
            M.KL_AT_LIMIT: float(not np.isfinite(n)),
            M.KL_MAX: float(np.log(N)),
            M.N_SAMPLES: N,
            M.BON_TIED: _tied(pool.proxy),
        }
    )
    if cfg.eval.alarm:
        from goodhart.eval.alarm import alarm
        from goodhart.pipeline.base.ensemble import base_stats, member_evidence

        w = est["w"] / N
        base = base_stats(pool.proxy, rule)
        row.update(alarm(pool.proxy, row[M.KL], base, w, rule=rule, others=member_evidence(pool, w)).row())
    return PointOutput(row, [])


def _tied(proxy: np.ndarray) -> float:
    """Mean fraction of a prompt's pool whose proxy equals another sample's."""
    s = np.sort(proxy, axis=1)
    eq = s[:, 1:] == s[:, :-1]
    dup = np.zeros(s.shape, dtype=bool)
    dup[:, 1:] |= eq
    dup[:, :-1] |= eq
    return float(dup.mean())


def _alarm(pool, n: int, kl: float, rule: AlarmRule) -> dict:
    """bon_alarm; with an ensemble proxy, the members' gains under best-of-n's order weights (ties
    left as sorted) are the disagreement evidence (pipeline/base/ensemble.py)."""
    from goodhart.pipeline.base.ensemble import base_stats, member_evidence

    base = base_stats(pool.proxy, rule)  # the pool's null replicates, once for every knob of the curve
    if getattr(pool, "members", None) is None:
        srt = base.null.sorted_pool if base.null is not None and base.null.sorted_pool.shape == pool.shape else None
        return bon_alarm(pool.proxy, n, kl, rule, base, srt).row()  # (the null sorted this pool once)
    from goodhart.eval.alarm import alarm
    from goodhart.eval.bon import order_weights

    order = np.argsort(pool.proxy, axis=1, kind="stable")
    w = np.zeros_like(pool.proxy)
    np.put_along_axis(w, order, np.broadcast_to(order_weights(pool.shape[1], n), pool.shape), axis=1)
    # the members' disagreement beside the DV-bound test (and the base's tail-shape test)
    return alarm(pool.proxy, kl, base, w, rule=rule, others=member_evidence(pool, w)).row()


def _examples(pool, n: int, k: int) -> list[dict]:
    """For the first k prompts: the best by proxy among the pool's first n samples (one draw)."""
    if pool.completions is None or k == 0:
        return []
    out = []
    for i in range(min(k, len(pool.completions))):
        j = int(np.argmax(pool.proxy[i, :n]))
        out.append(
            {
                "prompt": pool.prompts[i],
                "completion": pool.completions[i][j],
                "proxy": float(pool.proxy[i, j]),
                "utility": float(pool.utility[i, j]),
            }
        )
    return out
