"""The held-out proxy: the utility curve of a policy chosen by one proxy, read off a second proxy
whose error is independent of it -- no gold (docs/holdout.md).

R1 = V + X1 is the proxy the optimizer sees; R2 = V + X2 is held out: never optimized, its error
X2 independent of (V, X1), with a finite mean. A policy pi chosen by R1 -- a tilt or best-of-n of
the base pool, a trained policy -- depends on a sample only through R1 and its text, so

    E_pi[R2] - E_pi0[R2] = (E_pi[V] - E_pi0[V]) + (E_pi[X2] - E_pi0[X2]) = E_pi[V] - E_pi0[V].

On a pool the estimate is the optimizer's weighted mean with R2 in place of V, paired per prompt
as the gold gain is. The identification assumption, printed wherever an estimate is
(:data:`ASSUMPTION`): an error component the two proxies *share* reads as utility, with bias
equal to that component's gain under pi (tests/test_holdout.py measures it at a known size).

Several held-out proxies (independent draws of a synthetic error, or reward models trained on
disjoint data) combine per sample (:func:`combine`). The per-sample median of k independent
errors is itself an error independent of (V, X1): the identity above holds for it unchanged (its
mean, whatever it is, cancels in the difference), and its tail is far lighter -- the median of k
draws of a power tail of index a has index a (k + 1) / 2 -- so a heavy held-out error (pareto,
Student-t, even Levy with k >= 5) gives intervals that cover. A median over *prompts* (median of
means) would not do: the per-prompt noise of a heavy R2 is skewed, and its median is biased.

The verdicts are gold's rule (eval/goodhart.py label_points) applied to the held-out gain as if it
were the utility gain (:func:`estimated_labels`), labelled ``est:<verdict>`` so they are never
read as gold's. The difference R1 - R2 = X1 - X2 carries no utility: its upper tail is X1's upper
tail (and X2's lower tail, which a median of k members thins out), testable without gold
(:func:`error_tail`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import LABELS, VerdictRule, curve_columns, label_points

EST = "est:"
"""Prefix of an estimated label: `est:over-optimized` is the held-out estimate's, never gold's."""
EST_LABELS = tuple(EST + v for v in LABELS)
COMBINES = ("median", "mean")

ASSUMPTION = (
    "held-out estimate (no gold): E_pi[R2] - E_pi0[R2] is the utility gain when the held-out proxy's "
    "error is independent of the optimized proxy's error and of the utility (and has a finite mean); "
    "an error component the two share is read as utility (bias = that component's gain under the policy)"
)


def combine(members: np.ndarray, how: str = "median") -> np.ndarray:
    """Held-out members (k, ...) -> one held-out proxy (...), per sample: `median` or `mean`.

    Both keep the identification: the median (or mean) of k errors independent of (V, X1) is
    independent of (V, X1). `mean` is exact when members differ in scale (learned reward models,
    R2_j = a_j V + X_j: the mean is (mean a) V + mean X); `median` needs R2_j = V + X_j on one
    scale (independent draws of one synthetic error) and thins a heavy error's tail."""
    m = np.asarray(members, dtype=np.float64)
    if m.ndim < 1 or m.shape[0] < 1:
        raise ValueError(f"held-out members: expected an array (k, ...) with k >= 1, got shape {m.shape}")
    if how == "median":
        return np.median(m, axis=0)
    if how == "mean":
        return m.mean(axis=0)
    raise ValueError(f"held-out combine must be one of {', '.join(COMBINES)}, not {how!r}")


def best_of_2(proxy: np.ndarray, holdout: np.ndarray, ci: float = 0.95) -> tuple[float, float, float, float]:
    """Best-of-2 by proxy on a base pool (P, N), read by the held-out proxy: (gain, lo, hi) with a t
    interval over prompts, and the share gain / proxy gain. The estimate's near-base floor and
    share0, as gold's base/gain2 and base/share2 are gold's (eval/goodhart.py)."""
    from goodhart.eval.bon import best_of_n
    from goodhart.eval.bootstrap import t_ci

    proxy, holdout = np.asarray(proxy, dtype=np.float64), np.asarray(holdout, dtype=np.float64)
    nan = float("nan")
    if proxy.shape[-1] < 2:
        return nan, nan, nan, nan
    est = best_of_n(proxy, 2, holdout=holdout)
    g = est["holdout"] - holdout.mean(-1)
    gp = float(np.mean(est["proxy"] - proxy.mean(-1)))
    m, lo, hi = t_ci(g, ci)
    return float(m), float(lo), float(hi), float(np.mean(g)) / gp if gp > 0 else nan


# ---------------------------------------------------------------------------------------------
# Estimated verdicts: gold's rule on the held-out gain
# ---------------------------------------------------------------------------------------------
_SWAP = {
    M.GAIN_UTILITY: M.GAIN_HOLDOUT,
    M.POOL_DEPENDENT: M.HOLDOUT_POOL_DEPENDENT,
    M.BASE_GAIN2: M.HOLDOUT_BASE_GAIN2,
    M.BASE_SHARE2: M.HOLDOUT_BASE_SHARE2,
}


def has_holdout(df: pd.DataFrame) -> bool:
    """Does a results table carry a held-out gain on any point?"""
    return M.GAIN_HOLDOUT in df and pd.to_numeric(df[M.GAIN_HOLDOUT], errors="coerce").notna().any()


def estimate_table(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with a held-out gain, that gain (with its bounds) in the utility gain's columns and
    the held-out best-of-2 floor and share in gold's: what label_points reads as "utility". Gold's
    own columns are dropped, never mixed in. Curves are told apart by their held-out proxy too."""
    num = pd.to_numeric(df[M.GAIN_HOLDOUT], errors="coerce") if M.GAIN_HOLDOUT in df else None
    if num is None:
        return df.iloc[0:0].copy()
    out = df[num.notna()].copy()
    for gold, est in _SWAP.items():
        for suffix in ("", "/lo", "/hi"):
            g, e = gold + suffix, est + suffix
            if g in out:
                out = out.drop(columns=g)
            if e in out:
                out[g] = pd.to_numeric(out[e], errors="coerce")
    for c in (M.UTILITY, M.BASE_UTILITY):  # no gold number may leak into an estimate
        if c in out:
            out[c] = np.nan
    if M.HOLDOUT_SOURCE in out:
        src = out[M.HOLDOUT_SOURCE].fillna("").astype(str)
        keys = curve_columns(out)
        col = M.CURVE_PROXY if M.CURVE_PROXY in keys else keys[0]
        if col not in out:
            out[col] = ""
        out[col] = out[col].fillna("").astype(str) + " | held-out " + src
    return out


def estimated_units(units: Mapping[str, Mapping[str, np.ndarray]] | None) -> dict[str, dict[str, np.ndarray]]:
    """Per-prompt gains with the held-out gain as the utility gain (points without one left out)."""
    out = {}
    for pid, u in (units or {}).items():
        if "gain_holdout" in u:
            out[pid] = {"gain_proxy": np.asarray(u["gain_proxy"]), "gain_utility": np.asarray(u["gain_holdout"])}
    return out


def estimated_labels(
    df: pd.DataFrame,
    rule: VerdictRule = VerdictRule(),
    units: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Gold's verdict rule (label_points, the same thresholds) on the held-out gain of every point
    that has one: the estimated peak (`peak`), the turn (the first `est:over-optimized` or
    `est:catastrophic` past it) and each label prefixed `est:`. Its `verdict`, `why`, gain columns
    are the estimate's; rows are seed-pooled as gold's are (same `point_id` keys)."""
    est = estimate_table(df)
    if est.empty:
        return est.assign(verdict=pd.Series(dtype=str))
    lab = label_points(est, rule, estimated_units(units) or None)
    lab["verdict"] = EST + lab["verdict"].astype(str)
    lab["why"] = "held-out " + lab["why"].astype(str)
    return lab


EST_COLUMNS = {
    "verdict": "est_verdict",
    "why": "est_why",
    "peak": "est_peak",
    "share": "est_share",
    "mdd": "est_mdd",
    "curve": "est_curve",
    M.GAIN_UTILITY: M.GAIN_HOLDOUT,
    M.lo(M.GAIN_UTILITY): M.lo(M.GAIN_HOLDOUT),
    M.hi(M.GAIN_UTILITY): M.hi(M.GAIN_HOLDOUT),
}


def merge_estimates(labelled: pd.DataFrame, est: pd.DataFrame) -> pd.DataFrame:
    """Gold's labelled table with the estimate's columns beside (EST_COLUMNS' names: est_verdict,
    est_why, est_peak, ..., and the seed-pooled held-out gain), matched on the pooled point ids."""
    if est.empty or "point_id" not in labelled or "point_id" not in est:
        return labelled
    cols = [c for c in EST_COLUMNS if c in est]
    right = est[["point_id", *cols]].rename(columns=EST_COLUMNS)
    left = labelled.drop(columns=[c for c in right.columns if c != "point_id" and c in labelled])
    return left.merge(right, on="point_id", how="left")


# ---------------------------------------------------------------------------------------------
# The turn, per optimizer's curve
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Turn:
    """Where one optimizer's curve peaks and turns by a labelled table (gold's or the estimate's)."""

    curve: str
    algo: str
    peak_x: float
    """The peak's knob (`x`), nan when the curve never rose."""
    peak_kl: float
    peak_gain: tuple[float, float, float]
    turn_x: float
    """The knob of the first over-optimized or catastrophic point past the peak (nan: none)."""
    turn_kl: float
    turn_label: str
    knobs: tuple[float, ...]
    """The curve's knobs, in KL order (to count knobs between two peaks)."""
    ids: tuple[str, ...] = ()
    """The curve's (seed-pooled) point ids: a gold and an estimated Turn of one curve share them."""


def turns(lab: pd.DataFrame) -> list[Turn]:
    """One Turn per (curve, optimizer) of a labelled table (either labels, `est:` or not)."""
    out = []
    if lab.empty:
        return out
    for (cid, algo), g in lab.groupby(["curve", "algo"], sort=False):
        g = g.sort_values(M.KL)
        verdicts = g["verdict"].astype(str).str.removeprefix(EST)
        pk = g[g["peak"].astype(bool)] if "peak" in g else g.iloc[0:0]
        p = pk.iloc[0] if len(pk) else None
        bad = g[verdicts.isin(("over-optimized", "catastrophic")).to_numpy()]
        if p is not None:
            bad = bad[bad[M.KL].astype(float) > float(p[M.KL])]
        t = bad.iloc[0] if len(bad) else None
        nan = float("nan")
        gain = (
            tuple(float(p.get(c, nan)) for c in (M.GAIN_UTILITY, M.lo(M.GAIN_UTILITY), M.hi(M.GAIN_UTILITY)))
            if p is not None
            else (nan, nan, nan)
        )
        out.append(
            Turn(
                str(cid),
                str(algo),
                float(p["x"]) if p is not None else nan,
                float(p[M.KL]) if p is not None else nan,
                gain,  # type: ignore[arg-type]
                float(t["x"]) if t is not None else nan,
                float(t[M.KL]) if t is not None else nan,
                str(t["verdict"]) if t is not None else "",
                tuple(float(x) for x in g["x"]),
                tuple(str(i) for i in g["point_id"]) if "point_id" in g else (),
            )
        )
    return out


def turn_text(t: Turn) -> str:
    """One line: where the estimate (or gold) puts this optimizer's peak and turn."""
    from goodhart.eval.metrics import knob_label

    if t.peak_x != t.peak_x:
        return f"{t.curve} {t.algo}: the proxy never moved"
    name = "n" if t.algo == "bon" else M.X_KL_COEF
    lo_hi = f" [{t.peak_gain[1]:.3g}, {t.peak_gain[2]:.3g}]" if t.peak_gain[1] == t.peak_gain[1] else ""
    at = f"{knob_label(name, t.peak_x)} (KL {t.peak_kl:.3g}, gain {t.peak_gain[0]:.3g}{lo_hi})"
    if not t.peak_gain[1] > 0:  # the largest lower bound is not above 0: no peak shown
        return f"{t.curve} {t.algo}: never shown to rise (best lower bound at {at})"
    s = f"{t.curve} {t.algo}: peak at {at}"
    if t.turn_x == t.turn_x:
        s += f", turns at {knob_label(name, t.turn_x)} (KL {t.turn_kl:.3g}, {t.turn_label})"
    else:
        s += ", no turn shown"
    return s


# ---------------------------------------------------------------------------------------------
# Agreement with gold (reports with gold, the validation bench)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Agreement:
    points: int
    """Points labelled by both."""
    resolved: int
    """Points where neither label is `unresolved`."""
    agree: int
    """Resolved points whose estimated label is gold's."""
    est_unresolved: int
    """Points gold resolved and the estimate left `unresolved` (its power, not its error)."""
    table: pd.DataFrame
    """Counts: gold label (rows) x estimated label (columns)."""

    @property
    def rate(self) -> float:
        return self.agree / self.resolved if self.resolved else float("nan")


def agreement(gold: pd.Series, est: pd.Series) -> Agreement:
    """How often the estimated labels say gold's, on the points where both resolved."""
    g = gold.astype(str).str.removeprefix(EST)
    e = est.astype(str).str.removeprefix(EST)
    both = gold.notna() & est.notna() & (g != "nan") & (e != "nan")
    g, e = g[both], e[both]
    res = (g != "unresolved") & (e != "unresolved")
    return Agreement(
        int(both.sum()),
        int(res.sum()),
        int((g[res] == e[res]).sum()),
        int(((g != "unresolved") & (e == "unresolved")).sum()),
        pd.crosstab(g.rename("gold"), e.rename("estimate")) if len(g) else pd.DataFrame(),
    )


# ---------------------------------------------------------------------------------------------
# The error's tail, gold-free
# ---------------------------------------------------------------------------------------------
def error_tail(proxy: np.ndarray, holdout: np.ndarray, max_samples: int = 2**20, seed: int = 0, **kw):
    """Tail verdict (eval/tails.py tail_verdict) of R1 - R2 = X1 - X2 on the base pool: the
    utility cancels, so its upper tail is the optimized proxy's error's upper tail -- or the
    held-out error's *lower* tail, which a median of several members thins. `heavy` here says
    the gain can be bought in a heavy error tail whatever the utility's law (the single-proxy
    alarm cannot tell a heavy utility from a heavy error). Pools above max_samples are read on a
    uniform subsample of that size (the tail estimators' cost grows with n)."""
    from goodhart.eval.tails import tail_verdict

    d = (np.asarray(proxy, dtype=np.float64) - np.asarray(holdout, dtype=np.float64)).ravel()
    d = d[np.isfinite(d)]
    if d.size > max_samples:
        d = np.random.default_rng(seed).choice(d, max_samples, replace=False)
    return tail_verdict(d, seed=seed, **kw)
