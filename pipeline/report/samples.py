"""Any run's per-sample file (`goodhart analyze SAMPLES`): read it, check it, and turn it into the
tables a sweep's report reads (one result row per point, per-prompt gains, the base pool).

The schema (docs/integrations.md; examples/samples/tiny_run.csv is a small file in it). One row per
sample; columns by name, any order, other columns ignored:

    point        policy or checkpoint id; rows whose point is `base` are samples of the base policy
    prompt       prompt id (or text): a point's gains are paired with the base rows of the same prompt
    proxy        the proxy reward the run optimized (a number)
    utility      optional: the gold / true utility of the same sample (without it: the alarm, no verdicts)
    kl           the sample's sequence KL estimate to the base, log pi(y|x) - log pi_0(y|x), in nats
                 (or a per-point KL repeated on the point's rows) ...
    logp, logp_base  ... or the completion's summed token log-probs under the policy and the base
    weight       optional: the sample's weight within (point, prompt), e.g. a tilt or best-of-n
                 over base samples (default 1: plain samples)
    holdout      optional: a held-out proxy's score of the same sample -- a reward model the run did
                 not optimize, whose error is independent of the proxy's (docs/holdout.md); several
                 as holdout_<name> columns, combined per sample (mean, or median with
                 `--holdout-combine median`). Without gold it is the headline: the utility gain
                 estimated from it, with gold's rule (`est:` labels)
    algo, x_name, x, seed, curve, ess_ok, pool_dependent
                 optional point-level columns (one value per point; `curve` also on base rows when
                 several curves, each with its own base, share the file)

Per (point, prompt) the weighted means of proxy, utility and KL are the per-prompt estimates;
gains are paired per prompt against the mean of that prompt's base rows; intervals are t over
prompts, as every sweep's (eval.interval: t). Imports: config, base.measure, io, eval.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.pipeline.errors import UserError
from goodhart.pipeline.io import short_hash

BASE_ID = "base"
REQUIRED = ("point", "prompt", "proxy")
NUMERIC = ("proxy", "utility", "kl", "logp", "logp_base", "weight")
POINT_LEVEL = ("algo", "x_name", "x", "seed", "curve", M.TILT_ESS_OK, M.POOL_DEPENDENT)
SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")
# The largest magnitude a number may have: sums of squares of a million such values stay finite
# (1e306 proxies made every variance inf and the plots' axes NaN). No reward is near it.
MAX_ABS = 1e100
DEFAULT_CURVE = "run"


class SamplesError(UserError):
    """A per-sample file that cannot be analyzed: the message names the file, row and column."""


@dataclass
class Analysis:
    """What a samples file becomes: the sweep-shaped pieces the report reads."""

    results: pd.DataFrame
    """One result row per point (the columns of a sweep's results.csv)."""
    per_prompt: dict[str, dict[str, np.ndarray]]
    """point_id -> per_prompt.npz arrays (proxy, utility, base_proxy, base_utility, kl)."""
    pools: dict[str, dict[str, np.ndarray]]
    """pool file (relative) -> base pool arrays (proxy, utility, error), shape (P, N)."""
    base_proxy: dict[str, np.ndarray]
    """curve -> every base proxy of that curve (flat), for its tail diagnostics."""
    has_utility: bool
    notes: list[str] = field(default_factory=list)


# ============================================================================================
# Reading and checking
# ============================================================================================
def read_table(path: Path) -> pd.DataFrame:
    """The file as a table (.csv, .parquet, .jsonl; .json: a list of records)."""
    if not path.is_file():
        raise FileNotFoundError(f"no such samples file: {path}")
    if path.suffix not in SUFFIXES:
        raise SamplesError(f"{path}: expected a .csv, .parquet or .jsonl file of per-sample rows")
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path, dtype={"point": str, "prompt": str})
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_json(
            path, lines=path.suffix == ".jsonl", dtype={"point": str, "prompt": str}, precise_float=True
        )
    except (ValueError, OSError) as e:
        raise SamplesError(f"{path}: cannot read it as {path.suffix} ({str(e).splitlines()[0][:120]})") from None


def _where(path: Path | str, i: int, col: str) -> str:
    return f"{path}: row {i + 1}, column '{col}'"


def check(df: pd.DataFrame, path: Path | str = "samples", base_id: str = BASE_ID) -> pd.DataFrame:
    """The rows, checked and typed; raises SamplesError naming the first bad row and column.
    Rows are numbered from 1 in file order (a CSV's header is not a row)."""
    df = df.reset_index(drop=True)
    if df.empty:
        raise SamplesError(f"{path}: no rows")
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise SamplesError(
            f"{path}: no column '{missing[0]}' (required: {', '.join(REQUIRED)}; have: {', '.join(map(str, df.columns))})"
        )
    out = df.copy()
    for c in ("point", "prompt"):
        bad = out[c].isna()
        if bad.any():
            raise SamplesError(f"{_where(path, int(np.argmax(bad.to_numpy())), c)}: empty (every row needs a {c})")
        out[c] = out[c].astype(str)
    for c in NUMERIC:
        if c not in out:
            continue
        num = pd.to_numeric(out[c], errors="coerce")
        bad = num.isna() & out[c].notna()
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise SamplesError(f"{_where(path, i, c)}: expected a number, got {out[c].iloc[i]!r}")
        out[c] = num.astype(np.float64)
        huge = np.abs(out[c].to_numpy()) > MAX_ABS
        if (huge & np.isfinite(out[c].to_numpy())).any():
            i = int(np.argmax(huge & np.isfinite(out[c].to_numpy())))
            raise SamplesError(
                f"{_where(path, i, c)}: {out[c].iloc[i]:g} is beyond +-{MAX_ABS:g}, where means and variances "
                "overflow; rescale the column"
            )
    is_base = out["point"] == base_id
    if not (~is_base).any():
        raise SamplesError(f"{path}: only base rows (point '{base_id}'); add the rows of the run's policies")
    if not is_base.any():
        raise SamplesError(
            f"{path}: no base rows (point '{base_id}'): gains and the alarm need the base policy's samples"
        )
    _need_finite(out, "proxy", np.ones(len(out), bool), path)
    if "utility" in out:
        _need_finite(out, "utility", np.ones(len(out), bool), path, "(give utility on every row, or drop the column)")
    pol = ~is_base.to_numpy()
    if "kl" in out:
        _need_finite(out, "kl", pol, path, "(a KL estimate on every policy row)")
    elif "logp" in out and "logp_base" in out:
        _need_finite(out, "logp", pol, path)
        _need_finite(out, "logp_base", pol, path)
        out["kl"] = np.where(pol, out["logp"] - out["logp_base"], 0.0)  # k1: log pi - log pi_0 of the sample
    else:
        raise SamplesError(
            f"{path}: no KL: give a column 'kl' (per sample or per point) or both 'logp' and 'logp_base'"
        )
    for c in holdout_columns(out):
        num = pd.to_numeric(out[c], errors="coerce")
        if (num.isna() & out[c].notna()).any():
            i = int(np.argmax((num.isna() & out[c].notna()).to_numpy()))
            raise SamplesError(f"{_where(path, i, c)}: expected a number, got {out[c].iloc[i]!r}")
        out[c] = num.astype(np.float64)
        _need_finite(out, c, np.ones(len(out), bool), path, "(a held-out score on every row, base rows included)")
    if "weight" in out:
        _need_finite(out, "weight", np.ones(len(out), bool), path)
        neg = out["weight"] < 0
        if neg.any():
            i = int(np.argmax(neg.to_numpy()))
            raise SamplesError(f"{_where(path, i, 'weight')}: a weight must be >= 0, got {out['weight'].iloc[i]}")
    else:
        out["weight"] = 1.0
    if "curve" not in out:
        out["curve"] = DEFAULT_CURVE
    out["curve"] = out["curve"].fillna(DEFAULT_CURVE).astype(str)
    if "x" in out:
        out["x"] = _numbers(out, "x", pol, path, "(the knob that places the point: a number)")
        _need_finite(out, "x", pol, path, "(the knob that places the point: a number)")
    if "seed" in out:
        out["seed"] = _numbers(out, "seed", pol, path, "(a whole number)")
        seed = out["seed"].to_numpy()
        bad = pol & out["seed"].notna().to_numpy() & ~(np.isfinite(seed) & (np.round(seed) == seed))
        if bad.any():
            i = int(np.argmax(bad))
            raise SamplesError(f"{_where(path, i, 'seed')}: expected a whole number, got {df['seed'].iloc[i]!r}")
    for c in POINT_LEVEL:
        if c in out and c != "curve":
            _one_per_point(out[pol], c, path)
    _one_per_point(out[pol], "curve", path)
    return out


def _numbers(df: pd.DataFrame, col: str, rows: np.ndarray, path, hint: str) -> pd.Series:
    """Column `col` as float64; a policy row whose value is no number names its row."""
    num = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
    bad = rows & (num.isna() & df[col].notna()).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise SamplesError(f"{_where(path, i, col)}: expected a number, got {df[col].iloc[i]!r} {hint}".rstrip())
    return num


def holdout_columns(df: pd.DataFrame) -> list[str]:
    """The held-out proxy's columns: `holdout` and `holdout_<name>`."""
    return [c for c in df.columns if isinstance(c, str) and (c == "holdout" or c.startswith("holdout_"))]


def _need_finite(df: pd.DataFrame, col: str, rows: np.ndarray, path, hint: str = "") -> None:
    bad = rows & ~np.isfinite(df[col].to_numpy(dtype=np.float64))
    if bad.any():
        i = int(np.argmax(bad))
        raise SamplesError(f"{_where(path, i, col)}: expected a finite number, got {df[col].iloc[i]} {hint}".rstrip())


def _one_per_point(pol: pd.DataFrame, col: str, path) -> None:
    for pid, g in pol.groupby("point", sort=False):
        vals = g[col]
        first = vals.iloc[0]
        differs = ~((vals == first) | (vals.isna() & pd.isna(first)))
        if differs.any():
            i = int(g.index[int(np.argmax(differs.to_numpy()))])
            raise SamplesError(
                f"{_where(path, i, col)}: point '{pid}' has {vals.loc[i]!r} here but {first!r} on its first row "
                f"('{col}' is one value per point)"
            )


def read_samples(path: str | Path, base_id: str = BASE_ID) -> pd.DataFrame:
    """Read and check a per-sample file (the schema in this module's docstring)."""
    p = Path(path)
    return check(read_table(p), p, base_id)


# ============================================================================================
# Samples -> the sweep's tables
# ============================================================================================
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def point_dir_name(point: str) -> str:
    """A directory name for a point id (ids with other characters get a hash)."""
    return point if _SAFE.match(point) and point not in (".", "..") else "p" + short_hash(point, 10)


def _per_prompt_means(g: pd.DataFrame, prompts: list[str], cols: list[str]) -> dict[str, np.ndarray]:
    """Weighted means per prompt, in `prompts` order."""
    row = pd.Index(prompts).get_indexer(g["prompt"])  # each sample's prompt, -1 if not in `prompts`
    keep = row >= 0
    w = g["weight"].to_numpy(np.float64)[keep]
    den = np.bincount(row[keep], weights=w, minlength=len(prompts))
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):  # a prompt without samples: nan
        for c in cols:
            num = np.bincount(row[keep], weights=w * g[c].to_numpy(np.float64)[keep], minlength=len(prompts))
            out[c] = num / den
    return out


def _base_pool(
    b: pd.DataFrame, prompts: list[str], has_u: bool, has_h: bool = False
) -> tuple[dict[str, np.ndarray], int]:
    """(P, N) base pool in prompt order: each prompt's first N rows, N the smallest count (and the
    held-out proxy's, under `holdout`, when the file has one)."""
    groups = {k: g for k, g in b.groupby("prompt", sort=False)}
    n = min(len(groups[p]) for p in prompts)
    proxy = np.stack([groups[p]["proxy"].to_numpy(np.float64)[:n] for p in prompts])
    util = (
        np.stack([groups[p]["utility"].to_numpy(np.float64)[:n] for p in prompts])
        if has_u
        else np.full_like(proxy, np.nan)
    )
    out = {"proxy": proxy, "utility": util, "error": proxy - util}
    if has_h:
        out["holdout"] = np.stack([groups[p]["holdout"].to_numpy(np.float64)[:n] for p in prompts])
    return out, n


def _matrix(g: pd.DataFrame, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A point's samples as (P, M) proxies and weights (rows summing to 1), padded with weight 0."""
    row = pd.Index(prompts).get_indexer(g["prompt"])  # each sample's prompt, -1 if not in `prompts`
    g = g[row >= 0]
    row = row[row >= 0]
    col = g.groupby("prompt", sort=False).cumcount().to_numpy()  # its place among its prompt's, in file order
    r, w = np.zeros((len(prompts), int(col.max()) + 1)), np.zeros((len(prompts), int(col.max()) + 1))
    r[row, col] = g["proxy"].to_numpy(np.float64)
    w[row, col] = g["weight"].to_numpy(np.float64)
    return r, w / w.sum(axis=1, keepdims=True)


def _alarm_row(g: pd.DataFrame, r: np.ndarray, w: np.ndarray, kl: float, bpool, stats, null_stats, rule) -> dict:
    """The alarm of one point. A point that *is* the base pool under a tilt's softmax(r / beta) or
    best-of-n's order weights (what `goodhart export-samples` writes for a sweep's tilt and
    best-of-n points) is tested as the sweep tests it: against the same optimizer on the light
    null's replicates of that pool (eval/alarm.py tilt_alarm, bon_alarm). Any other policy --
    trained checkpoints, external runs -- by the z test against the null's DV bound at its KL."""
    from goodhart.eval.alarm import alarm, bon_alarm, tilt_alarm

    algo = str(g["algo"].iloc[0]) if "algo" in g else ""
    x = float(g["x"].iloc[0]) if "x" in g and pd.notna(g["x"].iloc[0]) else float("nan")
    if bpool is not None and null_stats is not None and algo in ("tilt", "bon") and np.isfinite(x):
        if _is_pool_policy(algo, x, r, w, bpool):
            if algo == "tilt":
                return tilt_alarm(bpool, x, kl, rule, null_stats).row()
            return bon_alarm(bpool, int(x), kl, rule, null_stats).row()
    # Plain samples (every prompt's m samples of equal weight) are a policy given as samples, read as
    # the online alarm reads it: with the base policy's own batches of that shape (alarm/noise_p).
    plain = bool(np.all(w == w[0, 0])) and w[0, 0] > 0
    return alarm(r, kl, stats, None if plain else w, rule=rule).row()


def _is_pool_policy(algo: str, x: float, r: np.ndarray, w: np.ndarray, bpool: np.ndarray) -> bool:
    """Whether (r, w) is the tilt at beta = x (or best-of-n, n = x) of the base pool bpool."""
    from goodhart.eval.bon import order_weights
    from goodhart.eval.tilt import log_weights

    if r.shape != bpool.shape or not np.array_equal(np.sort(r, axis=1), np.sort(bpool, axis=1)):
        return False
    if algo == "tilt":
        if x <= 0:
            return False
        expect = np.exp(log_weights(r, x))
    else:
        n = int(x)
        if n != x or not 1 <= n <= r.shape[1] or np.any(np.diff(r, axis=1) < 0):
            return False  # best-of-n rows come sorted by proxy, as export-samples writes them
        expect = np.broadcast_to(order_weights(r.shape[1], n), r.shape)
    return bool(np.allclose(w, expect, rtol=1e-6, atol=1e-12))


def _knob(points: list[str], df: pd.DataFrame) -> dict[str, tuple[str, float]]:
    """x_name, x per point: the columns when given, else the point id if every id is a number
    (a step, say), else the order of first appearance."""
    first = df.groupby("point", sort=False).first()
    out = {}
    numeric = all(_is_number(p) for p in points)
    for i, p in enumerate(points):
        name = str(first.loc[p, "x_name"]) if "x_name" in first and pd.notna(first.loc[p, "x_name"]) else "point"
        if "x" in first and pd.notna(first.loc[p, "x"]):
            x = float(first.loc[p, "x"])
        else:
            x = float(p) if numeric else float(i)
        out[p] = (name, x)
    return out


def _is_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


PAIRINGS = ("prompt", "global")


def build(
    df: pd.DataFrame,
    path: Path | str = "samples",
    base_id: str = BASE_ID,
    ci: float = 0.95,
    pairing: str = "prompt",
    rule: Any = None,
    holdout_combine: str = "mean",
) -> Analysis:
    """Checked rows (from `check`) -> one result row per point, per-prompt arrays and base pools.

    pairing "prompt": each prompt's gain against that prompt's base rows (every prompt of a point
    needs base rows). "global": against the mean of all the curve's base rows -- for training logs,
    whose prompts change from step to step and are not the base's; intervals are then over the
    point's prompts with the base mean taken as known (its own noise is not in them).
    holdout_combine: how several held-out columns combine per sample (eval/holdout.py combine)."""
    if pairing not in PAIRINGS:
        raise SamplesError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    from goodhart.eval.alarm import AlarmRule, BaseStats
    from goodhart.pipeline.base.measure import PER_PROMPT, base_share2, summarize

    rule = rule if rule is not None else AlarmRule()  # the alarm's rule (goodhart.eval.alarm.AlarmRule)
    nulls: dict[tuple, Any] = {}  # (curve, prompts) -> BaseStats with the null replicates
    from goodhart.pipeline.config.schema import RunConfig

    cfg = RunConfig.model_validate({"eval": {"interval": "t", "ci": ci}})
    has_u = "utility" in df
    hcols = holdout_columns(df)
    if hcols:  # one held-out proxy per sample, members combined (eval/holdout.py)
        from goodhart.eval.holdout import combine

        df = df.assign(holdout=combine(df[hcols].to_numpy(np.float64).T, holdout_combine))
    has_h = bool(hcols)
    is_base = df["point"] == base_id
    base, pol = df[is_base], df[~is_base]
    cols = ["proxy", "kl"] + (["utility"] if has_u else []) + (["holdout"] if has_h else [])
    points = _in_order(pol["point"])
    knob = _knob(points, pol)
    ana = Analysis(pd.DataFrame(), {}, {}, {}, has_u)
    rows = []
    for curve, pc in pol.groupby("curve", sort=False):
        bc = base[base["curve"] == curve]
        if bc.empty:
            i = int(pc.index[0])
            raise SamplesError(f"{_where(path, i, 'curve')}: no base rows (point '{base_id}') with curve '{curve}'")
        base_prompts = _in_order(bc["prompt"])
        pool, n = _base_pool(bc, base_prompts, has_u, has_h)
        counts = bc.groupby("prompt").size()
        if counts.nunique() > 1:
            ana.notes.append(
                f"curve {curve}: base prompts have {counts.min()} to {counts.max()} samples; the alarm's base "
                f"statistics, the tails and best-of-2's share use each prompt's first {n}"
            )
        pool_file = f"pools/{short_hash(['samples', str(curve)])}.npz"
        ana.pools[pool_file] = pool
        ana.base_proxy[str(curve)] = bc["proxy"].to_numpy(np.float64)
        bmean = _per_prompt_means(
            bc.assign(weight=1.0),
            base_prompts,
            ["proxy"] + (["utility"] if has_u else []) + (["holdout"] if has_h else []),
        )
        if has_h:  # the held-out proxy's base pool: the report's tail test of proxy - holdout, best-of-2's floor
            from goodhart.eval.holdout import best_of_2

            holdout_file = f"pools/{short_hash(['samples', str(curve)])}-holdout.npz"
            ana.pools[holdout_file] = {"holdout": pool.pop("holdout")}
            h2 = best_of_2(pool["proxy"], ana.pools[holdout_file]["holdout"], ci) if n >= 2 else (float("nan"),) * 4
            hsrc = f"samples column{'s' if len(hcols) > 1 else ''} {', '.join(hcols)}" + (
                f", {holdout_combine}" if len(hcols) > 1 else ""
            )
        share2 = base_share2(pool["proxy"], pool["utility"]) if has_u and n >= 2 else float("nan")
        for pid, g in pc.groupby("point", sort=False):  # in order of first appearance
            unknown = ~g["prompt"].isin(base_prompts)
            if pairing == "prompt" and unknown.any():
                i = int(g.index[int(np.argmax(unknown.to_numpy()))])
                raise SamplesError(
                    f"{_where(path, i, 'prompt')}: prompt {g['prompt'].loc[i]!r} of point '{pid}' has no base rows "
                    f"(gains are paired per prompt with the base policy's samples of that prompt)"
                )
            zero = g.groupby("prompt")["weight"].sum() <= 0
            if zero.any():
                p0 = zero.index[int(np.argmax(zero.to_numpy()))]
                i = int(g.index[int(np.argmax((g["prompt"] == p0).to_numpy()))])
                raise SamplesError(f"{_where(path, i, 'weight')}: point '{pid}', prompt {p0!r}: weights sum to 0")
            if pairing == "prompt":
                have = set(_in_order(g["prompt"]))
                prompts = [p for p in base_prompts if p in have]
                idx = [base_prompts.index(p) for p in prompts]
                bp = bmean["proxy"][idx]
                bu = bmean["utility"][idx] if has_u else np.full(len(prompts), np.nan)
                key = (str(curve), tuple(idx))
                if key not in nulls:  # the null's replicates: once per (curve, prompts)
                    nulls[key] = BaseStats.for_rule(pool["proxy"][idx], rule)
                # every policy's base carries the null's replicates, so the base's tail-shape
                # test joins the gain test for samples too (as for a sweep's points)
                stats = null_stats = nulls[key]
            else:  # every prompt against the base's overall mean
                prompts = _in_order(g["prompt"])
                bp = np.full(len(prompts), float(bc["proxy"].mean()))
                bu = np.full(len(prompts), float(bc["utility"].mean()) if has_u else np.nan)
                # as the TRL callback builds its base: one global mean, the null's replicates
                stats = BaseStats.for_rule(pool["proxy"], rule, per_prompt=False)
                null_stats = None
            est = _per_prompt_means(g, prompts, cols)
            _need_nonnegative_kl(est["kl"], g, pid, path)
            u = est["utility"] if has_u else np.full(len(prompts), np.nan)
            if has_h:
                bh = (
                    bmean["holdout"][idx] if pairing == "prompt" else np.full(len(prompts), float(bc["holdout"].mean()))
                )
            row = summarize(
                cfg,
                est["proxy"],
                u,
                est["kl"],
                bp,
                bu,
                "samples file",
                est.get("holdout"),
                bh if has_h else None,
            )
            per = row.pop(PER_PROMPT)
            r, w = _matrix(g, prompts)
            bpool = pool["proxy"][idx] if pairing == "prompt" else None
            row.update(_alarm_row(g, r, w, row[M.KL], bpool, stats, null_stats, rule))
            x_name, x = knob[pid]
            first = g.iloc[0]
            d = point_dir_name(str(pid))
            out = {
                "point_id": d,
                "name": str(pid),
                "status": "done",
                "algo": str(first["algo"]) if "algo" in g and pd.notna(first["algo"]) else "run",
                "error_law": str(curve),
                "x_name": x_name,
                "x": x,
                "seed": int(first["seed"]) if "seed" in g and pd.notna(first["seed"]) else 0,
                **row,
                M.N_SAMPLES: int(r.shape[1]),  # samples per prompt (the most any prompt has)
                "pool_file": pool_file if has_u else None,
                "per_prompt_file": "per_prompt.npz",
            }
            if has_u:
                out[M.BASE_SHARE2] = share2
            if has_h:
                out.update(
                    {
                        M.HOLDOUT_K: len(hcols),
                        M.HOLDOUT_SOURCE: hsrc,
                        "holdout_file": holdout_file,
                        "pool_file": pool_file,
                        **(
                            {
                                M.HOLDOUT_BASE_GAIN2: h2[0],
                                M.lo(M.HOLDOUT_BASE_GAIN2): h2[1],
                                M.hi(M.HOLDOUT_BASE_GAIN2): h2[2],
                                M.HOLDOUT_BASE_SHARE2: h2[3],
                            }
                            if pairing == "prompt"
                            else {}
                        ),
                    }
                )
            for c in (M.TILT_ESS_OK, M.POOL_DEPENDENT):
                if c in g and pd.notna(first[c]):
                    out[c] = _truth(first[c])  # the results-table columns of the same names
            rows.append(out)
            if pairing == "prompt":
                ana.per_prompt[d] = per
            else:  # no units: points hold different prompts, so nothing may be paired across them
                out.pop("per_prompt_file")
    if len({r["point_id"] for r in rows}) < len(rows):
        raise SamplesError(f"{path}: two points share a directory name; use distinct point ids")
    ana.results = pd.DataFrame(rows)
    return ana


def _need_nonnegative_kl(kl: np.ndarray, g: pd.DataFrame, pid: Any, path) -> None:
    """A point's KL is >= 0. Per-sample estimates (log pi - log pi_0) may be negative and so may
    their mean by chance when the policy is near the base; a mean three standard errors below 0
    (over prompts) is no chance: a sign or column mix-up, named before anything is written."""
    m = float(np.mean(kl))
    se = float(np.std(kl, ddof=1) / math.sqrt(kl.size)) if kl.size > 1 else 0.0
    if m + 3 * se < 0:
        i = int(g.index[0])
        raise SamplesError(
            f"{_where(path, i, 'kl')}: point '{pid}' has a mean KL of {m:.4g} (+- {se:.2g}); a KL divergence is "
            ">= 0 (log pi(y|x) - log pi_0(y|x): are policy and base swapped?)"
        )


def _in_order(col: pd.Series) -> list:
    """The distinct values of `col` in order of first appearance (pd.unique: iterating an arrow
    string column element by element took minutes on a million rows)."""
    return col.unique().tolist()


def _truth(v: Any) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0", "yes")
