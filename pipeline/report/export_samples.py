"""A finished sweep as a per-sample file (the schema of report/samples.py): what `goodhart analyze`
reads, written from what the sweep kept. The round trip sweep -> file -> analyze gives the sweep's
own verdicts (tests/test_analyze.py).

Per point: a tilt or best-of-n point is its base pool with the policy's weights on it (softmax(r /
beta) for the KL tilt, the exact optimum's weights for another divergence (eval/divergences.py),
best-of-n's order-statistic weights on the pool sorted by proxy), so its alarm is the sweep's
too; a trained point is one row per prompt holding its per-prompt means (the held-out samples are
not kept by a sweep), weight 1: its gains, KL and verdict are the sweep's, its alarm reads means,
not samples. KL: the point's per-prompt KL on each of the prompt's rows. Base
rows: each curve's base pool. Imports: io, sweeps.record, eval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from goodhart.eval import divergences
from goodhart.eval import metrics as M
from goodhart.eval.bon import order_weights
from goodhart.eval.tilt import log_weights
from goodhart.pipeline.report.samples import BASE_ID


def curve_text(r: dict) -> str:
    """One string for a curve's identity (the curve columns, else the error label)."""
    vals = [r.get(k) for k in M.CURVE_KEYS]
    if all(isinstance(v, str) and v for v in vals):
        return " | ".join(str(v) for v in vals)
    return str(r.get("error_law", "run"))


def _rows(point: str, prompt: np.ndarray, proxy, utility, kl, weight, extra: dict) -> pd.DataFrame:
    n = len(proxy)
    return pd.DataFrame(
        {
            "point": point,
            "prompt": prompt.astype(str),
            "proxy": proxy,
            "utility": utility,
            "kl": kl,
            "weight": weight,
            **{k: [v] * n for k, v in extra.items()},
        }
    )


def sweep_samples(root: Path) -> pd.DataFrame:
    """Every finished point of the sweep at `root` with per-prompt results, and its base pools."""
    from goodhart.pipeline.sweeps.record import load_results

    root = Path(root)
    df = load_results(root)
    if "status" in df:
        df = df[df["status"] == "done"]
    parts: list[pd.DataFrame] = []
    pools: dict[str, str] = {}  # curve -> pool file
    for r in (row.to_dict() for _, row in df.iterrows()):
        f = root / "points" / str(r["point_id"]) / "per_prompt.npz"
        pool_file = r.get("pool_file")
        if not f.is_file() or not isinstance(pool_file, str) or not (root / pool_file).is_file():
            continue
        per, pool = np.load(f), np.load(root / pool_file)
        curve = curve_text(r)
        pools.setdefault(curve, pool_file)
        extra = {"algo": r["algo"], "x_name": r["x_name"], "x": float(r["x"]), "seed": int(r.get("seed", 0) or 0)}
        extra["curve"] = curve
        for c in (M.TILT_ESS_OK, M.POOL_DEPENDENT):  # tilt's flags: they decide which point may be the peak
            v = r.get(c)
            if isinstance(v, (bool, np.bool_)) or str(v) in ("True", "False"):
                extra[c] = str(v) == "True"
        P, N = pool["proxy"].shape
        prompts = np.repeat(np.arange(P), N)
        kl = np.repeat(per["kl"], N)
        div = r.get(M.TILT_DIVERGENCE)
        if str(r["algo"]).startswith("tilt-") and isinstance(div, str) and div != "kl":
            # another divergence's exact optimum on the pool (eval/divergences.py): its weights
            w = divergences.weights(pool["proxy"], float(r["x"]), div) / N
            parts.append(
                _rows(r["point_id"], prompts, pool["proxy"].ravel(), pool["utility"].ravel(), kl, w.ravel(), extra)
            )
        elif r["algo"] == "tilt":
            w = np.exp(log_weights(pool["proxy"], float(r["x"])))
            parts.append(
                _rows(r["point_id"], prompts, pool["proxy"].ravel(), pool["utility"].ravel(), kl, w.ravel(), extra)
            )
        elif r["algo"] == "bon":
            order = np.argsort(pool["proxy"], axis=-1, kind="stable")
            p_sorted = np.take_along_axis(pool["proxy"], order, -1)
            u_sorted = np.take_along_axis(pool["utility"], order, -1)
            w = np.broadcast_to(order_weights(N, int(r["x"])), (P, N))
            parts.append(_rows(r["point_id"], prompts, p_sorted.ravel(), u_sorted.ravel(), kl, w.ravel(), extra))
        else:  # a trained point: its per-prompt means, one row per prompt
            parts.append(_rows(r["point_id"], np.arange(P), per["proxy"], per["utility"], per["kl"], np.ones(P), extra))
    for curve, pool_file in pools.items():
        pool = np.load(root / pool_file)
        P, N = pool["proxy"].shape
        parts.append(
            _rows(
                BASE_ID,
                np.repeat(np.arange(P), N),
                pool["proxy"].ravel(),
                pool["utility"].ravel(),
                np.zeros(P * N),
                np.ones(P * N),
                {"curve": curve},
            )
        )
    if not parts:
        raise FileNotFoundError(f"{root}: no finished point with per-prompt results and a saved base pool")
    return pd.concat(parts, ignore_index=True)
