"""Matched KL: the knob at which an optimum on a pool reaches a given KL.

Mitigations are compared at equal KL to the base policy, never at an equal coefficient (a
coefficient's meaning depends on the proxy's units: a rank in [0, 1] and a raw Pareto reward need
coefficients orders of magnitude apart for the same KL). For every optimum of
``max E[r] - coef D_f(pi || pi_0)`` on a pool (eval/divergences.py), the KL of its weights,
mean(w log w), falls monotonically as coef grows (KL: dKL/dcoef = -Var_w(r) / coef^3 < 0 for the
exponential tilt; the other divergences are checked numerically in tests/test_matched.py), from
the KL of the pool argmax at coef -> 0 to 0 at coef -> inf. So the coef that gives a target KL is
a one-dimensional monotone root, solved here in log coef:

* ``pool`` (one coef for every prompt, the mean KL over prompts equal to the target): the
  penalised optimum at the matched coef; by Lagrange duality also the optimum of E[r] subject to
  the *mean* KL over prompts <= target.
* ``per_prompt`` (each prompt its own coef, its KL equal to the target): the KL-constrained
  optimum max E[r | x] subject to KL(pi(.|x) || pi_0(.|x)) <= target for every prompt x
  (KL tilt only).

The most KL any of these optima reaches is the argmax limit's: every f-divergence optimum (and
the tilt of any monotone transform of r) tends, as coef -> 0, to the uniform policy on the pool's
top value, whose KL is log(N / m) with m the number of samples tied at the top (log N without
ties; a clip at the base q99 ties the top 1%: log 100). A target at or beyond that is the limit
itself (coef 0): extending a grid of targets past log N adds copies of its last point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from goodhart.eval import divergences as D
from goodhart.eval.tilt import kl_from_log_weights, log_weights

LIMIT_TOL = 1e-9
"""A target within this (nats) of the argmax limit's KL is the limit itself."""
KL_RTOL = 1e-6
"""Relative tolerance of a matched KL: |KL / target - 1| below about this."""


def top_ties(proxy: np.ndarray) -> np.ndarray:
    """Per prompt, how many samples share the pool's top proxy value."""
    r = np.atleast_2d(np.asarray(proxy, dtype=np.float64))
    return np.sum(r == r.max(axis=-1, keepdims=True), axis=-1)


def reach(proxy: np.ndarray) -> np.ndarray:
    """Per prompt, the KL of the argmax limit: log(N / ties at the top), the most KL an optimum
    tending to the argmax can show on this pool."""
    r = np.atleast_2d(np.asarray(proxy, dtype=np.float64))
    return np.log(r.shape[-1] / top_ties(r))


def limit_weights(proxy: np.ndarray) -> np.ndarray:
    """w of the argmax limit (coef -> 0): uniform over each prompt's top ties, mean 1 per row."""
    r = np.atleast_2d(np.asarray(proxy, dtype=np.float64))
    top = (r == r.max(axis=-1, keepdims=True)).astype(np.float64)
    return top * (r.shape[-1] / top.sum(axis=-1, keepdims=True))


def kl_at(
    proxy: np.ndarray, coef: float | np.ndarray, divergence: str = "kl", hint: dict[int, float] | None = None
) -> np.ndarray:
    """Per-prompt KL of the optimum at `coef` (scalar or per prompt; 0: the argmax limit).
    `hint`: eval.divergences.weights' warm start (the normalisers of a nearby coef)."""
    r = np.atleast_2d(np.asarray(proxy, dtype=np.float64))
    c = np.broadcast_to(np.asarray(coef, dtype=np.float64), r.shape[:1])
    out = np.empty(r.shape[0])
    lim = c <= 0
    if lim.any():
        out[lim] = reach(r[lim])
    if (~lim).any():
        if divergence == "kl":
            out[~lim] = kl_from_log_weights(log_weights(r[~lim], c[~lim][:, None]))
        else:
            out[~lim] = D.optimum(r[~lim], c[~lim], divergence, hint if lim.sum() == 0 else None)["kl"]
    return out


def _scale(r: np.ndarray) -> float:
    """A starting coef: the spread of the proxy between its median and top (any law has both)."""
    s = float(np.median(r.max(axis=-1) - np.median(r, axis=-1)))
    return s if s > 0 else 1.0


def coef_for_kl(
    proxy: np.ndarray,
    target: float,
    divergence: str = "kl",
    per_prompt: bool = False,
    known: dict[Any, Any] | None = None,
) -> np.ndarray:
    """The coef at which the optimum's KL equals `target`: shape (P,), one value repeated
    (`per_prompt` False: the mean KL over prompts) or one per prompt (`per_prompt`: each prompt's
    KL; KL tilt only). 0 where the target is at or beyond the argmax limit's KL (the limit itself).
    `known`: a dict coef -> mean KL of earlier evaluations on the same pool and divergence, read to
    bracket the root and extended with this solve's evaluations (points of one curve share it;
    under the key "hint" it also keeps the normalisers of the last solve, Newton's next start)."""
    if target <= 0:
        raise ValueError(f"a KL target must be > 0, got {target}")
    r = np.atleast_2d(np.asarray(proxy, dtype=np.float64))
    P = r.shape[0]
    if per_prompt:
        if divergence != "kl":
            raise ValueError(f"a per-prompt KL budget is implemented for the KL tilt, not {divergence!r}")
        return _per_prompt_kl_tilt(r, target)
    top = float(np.mean(reach(r)))
    if target >= top - LIMIT_TOL:
        return np.zeros(P)
    known = {} if known is None else known
    hint = known.setdefault("hint", {})

    def g(logc: float) -> float:  # decreasing in log coef, near linear: log KL falls ~2 per unit at small KL
        c = float(np.exp(logc))
        if c not in known:
            known[c] = float(np.mean(kl_at(r, c, divergence, hint)))
        return float(np.log(max(known[c], 1e-300)) - np.log(target))

    pts = {float(np.log(c)): g(float(np.log(c))) for c in known if isinstance(c, float) and c > 0}
    x = _root(g, pts, float(np.log(_scale(r))))
    return np.zeros(P) if x is None else np.full(P, float(np.exp(x)))


def _root(g, pts: dict[float, float], x0: float) -> float | None:
    """x with |g(x)| <= KL_RTOL for g decreasing and near linear: secant steps through the two
    evaluations closest to the root (`pts`, x -> g(x), holds earlier ones on the same pool: a curve's
    later targets start next to its earlier roots), kept inside the bracket they give (bisection
    when a step leaves it); 2-4 evaluations per target. None: g stays above 0 however small x gets
    (the target is beyond what the optimum resolves: its argmax limit)."""
    if not pts:
        pts[x0] = g(x0)
    for _ in range(200):
        best = sorted(pts, key=lambda x: abs(pts[x]))
        x1 = best[0]
        if abs(pts[x1]) <= KL_RTOL:
            return x1
        lo = max((x for x, v in pts.items() if v > 0), default=None)
        hi = min((x for x, v in pts.items() if v < 0), default=None)
        if lo is not None and hi is not None and hi - lo <= 1e-13 * max(1.0, abs(x1)):
            return x1
        slope = -2.0  # KL ~ coef^-2 at small KL (chi2-like); the secant's own slope when it has one
        if len(best) > 1:
            x2 = best[1]
            s = (pts[x2] - pts[x1]) / (x2 - x1) if x2 != x1 else np.nan
            if np.isfinite(s) and s < 0:
                slope = min(s, -1e-3)
        xn = x1 - pts[x1] / slope
        if lo is not None and hi is not None:
            if not lo < xn < hi:
                xn = 0.5 * (lo + hi)
        else:
            xn = x1 + float(np.clip(1.2 * (xn - x1), -64.0, 64.0))  # overshoot a little: find the bracket
            if lo is None and xn < -745.0 + x0:  # thousands of nats of log coef: the limit
                return None
        pts[xn] = g(xn)
    return min(pts, key=lambda x: abs(pts[x]))


def _per_prompt_kl_tilt(r: np.ndarray, target: float) -> np.ndarray:
    """Per prompt, the beta of the exponential tilt whose KL on that prompt's pool is `target`
    (each row its own monotone root, as coef_for_kl solves the pool's); 0 where the target is at
    or beyond that prompt's argmax limit."""
    out = np.zeros(r.shape[0])
    tops = reach(r)
    for i in range(r.shape[0]):
        if target < tops[i] - LIMIT_TOL:
            out[i] = coef_for_kl(r[i : i + 1], target)[0]
    return out


def optimum_at(
    proxy: np.ndarray,
    coef: float | np.ndarray,
    divergence: str = "kl",
    hint: dict[int, float] | None = None,
    **values: np.ndarray,
) -> dict[str, np.ndarray]:
    """eval.divergences.optimum at a coef that may be one per prompt and 0 (the argmax limit:
    uniform over the top ties) for some prompts: per prompt the tilted means of ``proxy`` and of
    ``values``, ``kl``, ``divergence``, ``ess``, ``dropped`` and the weights ``w`` (mean 1).
    `hint`: eval.divergences.weights' warm start."""
    r = np.atleast_2d(np.asarray(proxy, dtype=np.float64))
    P, N = r.shape
    c = np.broadcast_to(np.asarray(coef, dtype=np.float64), (P,))
    div = D.get(divergence)
    w = np.empty_like(r)
    lim = c <= 0
    if lim.any():
        w[lim] = limit_weights(r[lim])
    if (~lim).any():
        if divergence == "kl":
            w[~lim] = np.exp(log_weights(r[~lim], c[~lim][:, None])) * N
        else:
            w[~lim] = D.weights(r[~lim], c[~lim], divergence, hint if not lim.any() else None)
    out = {
        "w": w,
        "proxy": np.mean(w * r, axis=-1),
        "kl": np.mean(D._xlogx(w), axis=-1),
        "divergence": np.mean(div.f(w), axis=-1),
        "ess": N / np.mean(np.square(w), axis=-1),
        # truncation only where the divergence truncates (chi2), and never in the limit's own
        # zeros (the argmax limit is a limit, not an optimum that drops samples)
        "dropped": np.where(lim, 0.0, np.mean(w == 0, axis=-1)) if div.truncates else np.zeros(P),
    }
    for name, v in values.items():
        out[name] = np.mean(w * np.asarray(v, dtype=np.float64), axis=-1)
    return out
