"""`tilt`: the exact KL-regularised optimum pi_beta ~ pi_0 exp(proxy / beta), on the base pool.

The math is eval.tilt (self-normalised weights, KL <= log N, ESS); this file puts it on the
sweep's KL axis and flags points that cannot be trusted: `low-ESS` (the estimate rests on a
handful of samples) and `pool-dependent` (re-estimated on the nested sub-pool N/4 of the
same prompts, it drifts with N beyond its own interval: for a heavy-tailed proxy E[exp(U/beta)]
is infinite, the population optimum does not exist, and the pool size decides what is shown,
even while the ESS looks fine).

`algo.divergence` other than kl (the arena): the exact optimum of E[proxy] - coef D_f on
the same pool (eval/divergences.py; chi2, mixed_chi2_kl, hellinger), on the same KL axis (the KL
of its weights), its row labelled `tilt-<divergence>` with the divergence's own value beside.

`algo.kl.target` (matched KL): the coefficient is solved on the pool so that the
optimum's KL equals the target (eval/matched.py: one coefficient for the pool, or one per prompt
with `algo.kl.per_prompt`, the KL-constrained optimum); at or beyond the argmax's KL the point is
the argmax limit. The solved coefficient is the row's kl/coef, the target kl/target."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule, alarm, tilt_alarm
from goodhart.eval.tilt import jackknife_bias, log_weights, tilt
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput, summarize


class LowESSWarning(UserWarning):
    """A tilt point rests on too few effective samples."""


class PoolDependentWarning(UserWarning):
    """A tilt point's estimate changes with the pool size beyond its interval."""


def estimate(
    proxy: np.ndarray,
    beta: float | np.ndarray,
    divergence: str = "kl",
    hint: dict[int, float] | None = None,
    *,
    logw: np.ndarray | None = None,
    **values: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-prompt tilted means, kl and ess of the optimum regularised by `divergence` (kl: the
    exponential tilt of eval/tilt.py; any other: eval/divergences.py, which also gives the
    divergence's own value and the weights). `beta` one per prompt or 0 (the argmax limit), or a
    `hint` (the normalisers of a nearby coef: a matched-KL search's): eval/matched.py optimum_at.
    ``logw``: the KL tilt's log weights when the caller has them (``point_log_weights``)."""
    if np.ndim(beta) or float(beta) <= 0 or hint is not None:
        from goodhart.eval.matched import optimum_at

        return optimum_at(proxy, beta, divergence, hint, **values)
    if divergence == "kl":
        return tilt(proxy, beta, logw=logw, **values)
    from goodhart.eval.divergences import optimum

    return optimum(proxy, beta, divergence, **values)


def point_log_weights(
    proxy: np.ndarray, beta: float | np.ndarray, divergence: str, hint: dict[int, float] | None
) -> np.ndarray | None:
    """The KL tilt's log weights at a scalar coef > 0 (what ``estimate`` computes for it), else None
    (another divergence, per-prompt coefs, the argmax limit: their own weights)."""
    if divergence != "kl" or np.ndim(beta) or float(beta) <= 0 or hint is not None:
        return None
    return log_weights(proxy, float(beta))


def matched_coef(pool, cfg) -> tuple[float | np.ndarray, dict[str, Any], dict[int, float] | None]:
    """The point's coefficient: `algo.kl.coef`, or with `algo.kl.target` the one solved on the pool
    (eval/matched.py; one per prompt with `per_prompt`); and the row fields that say so. The
    solves of one pool and divergence share their evaluations within a process (a curve's targets)."""
    kl = cfg.algo.kl
    if kl.target is None:
        return kl.coef, {}, None
    from goodhart.eval.matched import coef_for_kl
    from goodhart.pipeline.base.pool import pool_memo

    div = cfg.algo.divergence
    known = pool_memo(_known_kl, pool.proxy, divergence=div)  # one dict per pool and divergence
    c = coef_for_kl(pool.proxy, kl.target, div, per_prompt=kl.per_prompt, known=known)
    beta: float | np.ndarray = c if kl.per_prompt else float(c[0])
    pos = c[c > 0]
    fields = {
        M.KL_TARGET: float(kl.target),
        M.KL_AT_LIMIT: float(np.mean(c <= 0)),
        M.KL_COEF: float(np.exp(np.mean(np.log(pos)))) if len(pos) else 0.0,  # per prompt: geometric mean
    }
    return beta, fields, (known.get("hint") if div != "kl" and not kl.per_prompt else None)


def _known_kl(proxy: np.ndarray, divergence: str) -> dict[Any, Any]:
    """An empty record coef -> mean KL for one pool and divergence (pool_memo keeps it per process)."""
    return {}


def subpool_drift(
    proxy: np.ndarray,
    utility: np.ndarray,
    beta: float,
    ci: float,
    divergence: str = "kl",
    full: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Does the tilted estimate move with the pool size? Per prompt, the estimate on the full
    pool N minus on its nested sub-pool N/4 (the first N/4 samples). For proxy and utility:
    the mean drift, whether it is significant (a t interval, or -- heavy tails make drifts
    0-or-huge -- a sign test over the prompts whose drift is not 0; Bonferroni over the four
    tests), and the half-width of the sub-pool estimate's own interval. `dependent` lists the
    quantities whose drift is significant and beyond that half-width. `full`: the full pool's
    estimate when the caller has it (with its proxy and utility means)."""
    from goodhart.eval.bootstrap import sign_tail, t_ci

    N = proxy.shape[1]
    q = max(N // 4, 1)
    full = full if full is not None else estimate(proxy, beta, divergence, utility=utility)
    sub = estimate(proxy[:, :q], beta, divergence, utility=utility[:, :q])
    a = (1 - ci) / 4
    out: dict[str, Any] = {"dependent": []}
    for k, vals in (("proxy", proxy), ("utility", utility)):
        _, lo, hi = t_ci(sub[k] - vals[:, :q].mean(1), ci)
        half = (hi - lo) / 2
        d = full[k] - sub[k]
        m, dlo, dhi = t_ci(d, 1 - 2 * a)
        nz = d[np.abs(d) > 1e-12 * (1 + np.abs(full[k]))]
        pos = int(np.sum(nz > 0))
        sign = len(nz) > 0 and (sign_tail(pos, len(nz)) < a or sign_tail(len(nz) - pos, len(nz)) < a)
        sig = bool(dlo > 0 or dhi < 0 or sign)
        out[k] = m
        if sig and abs(m) > half:
            out["dependent"].append(f"{k} {m:+.3g} from N/4={q} to N={N} (sub-pool interval half-width {half:.3g})")
    return out


def run(ctx: PointContext) -> PointOutput:
    cfg, pool, ho = ctx.cfg, ctx.pool(), ctx.holdout()
    div = cfg.algo.divergence
    beta, matched, hint = matched_coef(pool, cfg)
    extra = {"holdout": ho.values} if ho is not None else {}  # the held-out proxy, weighted alike
    lw = point_log_weights(pool.proxy, beta, div, hint)  # one softmax for the estimate, bias and alarm
    est = estimate(pool.proxy, beta, div, hint, logw=lw, utility=pool.utility, **extra)
    row = summarize(
        cfg,
        est["proxy"],
        est["utility"],
        est["kl"],
        pool.proxy.mean(1),
        pool.utility.mean(1),
        kl_estimator="tilt_snis",  # sum_i w_i log(N w_i) over the pool; <= log N (any divergence's weights)
        holdout=est.get("holdout"),
        base_holdout=ho.values.mean(1) if ho is not None else None,
    )
    P, N = pool.shape
    row.update(
        {
            M.KL_COEF: beta,
            **matched,
            M.TILT_ESS: float(est["ess"].mean()),
            M.TILT_ESS_MIN: float(est["ess"].min()),
            M.KL_MAX: float(np.log(N)),
            M.N_SAMPLES: N,
            M.TILT_ESS_OK: bool(est["ess"].min() >= cfg.eval.min_ess),
        }
    )
    if cfg.algo.kl.per_prompt:  # the KL-constrained optimum: not read as (or pooled with) the penalised tilt
        row["algo"] = "tilt-budget"
    if div != "kl":  # another regulariser on the same pool: its own optimizer label and its exact value
        row.update(
            {
                "algo": f"tilt-{div}",  # not pooled with (or read as) the KL tilt at the same coef
                M.TILT_DIVERGENCE: div,
                M.TILT_DIVERGENCE_VALUE: float(est["divergence"].mean()),
                M.TILT_DROPPED: float(est["dropped"].mean()),
            }
        )
    bb = np.asarray(beta, dtype=np.float64)
    if div == "kl" and N >= 2 and np.all(bb > 0):  # how far the pool's optimum (what the interval covers)
        # is from the population's (at the argmax limit, coef 0, there is no tilt to correct)
        b = jackknife_bias(pool.proxy, bb[:, None] if bb.ndim else float(bb), pool.utility, logw=lw)
        row[M.TILT_POOL_BIAS] = float(np.mean(b))
        row[M.TILT_POOL_BIAS_SE] = float(np.std(b, ddof=1) / np.sqrt(P)) if P >= 2 else float("nan")
    what = f"kl.target={cfg.algo.kl.target:g}" if matched else f"kl.coef={beta:g}"
    if cfg.eval.subpool_check and N >= 8:
        d = subpool_drift(pool.proxy, pool.utility, beta, cfg.eval.ci, div, full=est)
        row[M.TILT_DRIFT_PROXY], row[M.TILT_DRIFT_UTILITY] = d["proxy"], d["utility"]
        row[M.POOL_DEPENDENT] = bool(d["dependent"])
        if ho is not None:  # the estimate's own flag: the proxy's drift or the held-out proxy's, no gold read
            dh = subpool_drift(pool.proxy, ho.values, beta, cfg.eval.ci, div, full={**est, "utility": est["holdout"]})
            row[M.HOLDOUT_POOL_DEPENDENT] = bool(dh["dependent"])
        if d["dependent"]:
            warnings.warn(
                f"tilt {what}: pool-dependent, the estimate drifts with the pool size: {'; '.join(d['dependent'])}",
                PoolDependentWarning,
                stacklevel=2,
            )
    if cfg.eval.alarm:
        row.update(
            _alarm(pool, beta, div, est, row[M.KL], ctx.alarm_rule, lw)
        )  # proxy + KL + base pool only (eval/alarm.py)
    if not row[M.TILT_ESS_OK]:
        warnings.warn(
            f"tilt {what}: worst-prompt ESS {row[M.TILT_ESS_MIN]:.1f} < eval.min_ess={cfg.eval.min_ess:g}; "
            f"the estimate rests on a handful of samples and its KL is capped at log N = {np.log(N):.2f}",
            LowESSWarning,
            stacklevel=2,
        )
    return PointOutput(row, _examples(pool, beta, cfg.eval.n_examples, div, est))


def _weights(proxy: np.ndarray, beta: float | np.ndarray, div: str, est: dict[str, np.ndarray]) -> np.ndarray:
    """The policy's mass per sample (rows summing to 1)."""
    if "w" in est:
        return est["w"] / est["w"].shape[-1]
    return np.exp(log_weights(proxy, beta))


def _alarm(
    pool,
    beta: float | np.ndarray,
    div: str,
    est: dict[str, np.ndarray],
    kl: float,
    rule: AlarmRule,
    logw: np.ndarray | None = None,
) -> dict[str, Any]:
    """The gold-free alarm of this optimum; with an ensemble proxy, its members' gains under the
    same weights are the disagreement evidence (pipeline/base/ensemble.py)."""
    from goodhart.pipeline.base.ensemble import base_stats, member_evidence

    base = base_stats(pool.proxy, rule)  # the pool's null replicates, once for every knob of the curve
    if div == "kl" and getattr(pool, "members", None) is None and np.ndim(beta) == 0 and beta > 0:
        return tilt_alarm(pool.proxy, beta, kl, rule, base, logw).row()
    w = _weights(pool.proxy, beta, div, est)
    others = member_evidence(pool, w)
    # another divergence's optimum (or an ensemble's): the DV-bound test and the base's tail-shape test
    return alarm(pool.proxy, kl, base, w, rule=rule, others=others).row()


def _examples(pool, beta: float | np.ndarray, k: int, div: str = "kl", est: dict | None = None) -> list[dict]:
    """The highest-weight sample of the first k prompts."""
    if pool.completions is None or k == 0:
        return []
    w = _weights(pool.proxy, beta, div, est if est is not None else estimate(pool.proxy, beta, div))
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
