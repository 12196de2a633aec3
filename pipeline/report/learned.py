"""The report section for sweeps whose proxy is a learned reward model (`reward: {type: hf}`).

Per reward model (one checkpoint path), from the sweep directory alone:
- its card (data size, held-out accuracy against gold) when `goodhart train-rm` wrote one;
- the error e = z(proxy) - z(gold) (z-scored over the base pool, eval/learned_error.py) under the
  base policy: tail diagnostics and light/heavy verdict (eval/tails.py);
- e under each optimized policy: exact for tilt and best-of-n (pool weights): its mean, the mass
  above the base error's 99th percentile (1% under the base), and the tail verdict of a weighted
  resample at the strongest optimization; trained policies (ppo, rloo, ...) give the mean only,
  from their result row (their held-out samples are not kept);
- Gao et al.'s form fitted to gold gain against KL per optimizer, and whether the fitted peak KL
  moves with the reward model's data size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.pipeline.io import read_json

TAIL_Q = 0.99
MOVED_FACTOR = 5.0
"""'Moved into its tail': the optimized policy puts at least this many times the base mass (1 - TAIL_Q)
above the base error's TAIL_Q quantile."""
POOL_ALGOS = ("tilt", "bon")


def _reward_of(root: Path, point_id: str) -> dict[str, Any] | None:
    import yaml

    p = root / "points" / str(point_id) / "config.yaml"
    if not p.is_file():
        return None
    try:
        tree = yaml.load(p.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (OSError, ValueError, yaml.YAMLError):  # torn: this section skips the point
        return None
    reward = (tree.get("reward") if isinstance(tree, dict) else None) or {}
    return reward if isinstance(reward, dict) and reward.get("type") == "hf" else None


def _card(path: str) -> dict[str, Any]:
    p = Path(path) / "rm_card.json"
    try:
        card = read_json(p) if p.is_file() else {}
    except (OSError, ValueError):  # a torn card: the section shows no card figures
        return {}
    return card if isinstance(card, dict) else {}


TAIL_MIN = 500
"""Samples a tail verdict needs (eval/tails.py tail_verdict): a smaller pool gets none, said so."""


def _tail_verdict(x: np.ndarray):
    """tail_verdict(x), or None when the pool is smaller than it needs (a smoke-sized sweep)."""
    from goodhart.eval.tails import tail_verdict

    return tail_verdict(x) if np.size(x) >= TAIL_MIN else None


def learned_error(root: Path, labelled: pd.DataFrame) -> list[dict[str, Any]]:
    """One record per learned reward model of the sweep (empty when the proxy is not learned)."""
    from goodhart.eval.fits import fit_bon, fit_rl
    from goodhart.eval.learned_error import (
        bon_weights,
        shift,
        standardized_error,
        tilt_weights,
        weighted_resample,
    )

    if "point_id" not in labelled or "pool_file" not in labelled:
        return []
    paths = {pid: r["path"] for pid in labelled["point_id"] if (r := _reward_of(root, pid))}
    if not paths:
        return []
    df = labelled.assign(rm_path=labelled["point_id"].map(paths)).dropna(subset=["rm_path"])
    out = []
    for path, g in df.groupby("rm_path", sort=False):
        files = [f for f in g["pool_file"].dropna().unique() if (root / str(f)).is_file()]
        if not files:
            continue
        z = np.load(root / str(files[0]))
        e, mom = standardized_error(z["proxy"], z["utility"])
        rec: dict[str, Any] = {"path": path, "card": _card(path), "moments": mom, "base": _tail_verdict(e.ravel())}
        rows = []
        for _, r in g.sort_values(["algo", M.KL]).iterrows():
            algo, x = str(r["algo"]), float(r["x"])
            if algo in POOL_ALGOS:
                w = tilt_weights(z["proxy"], x) if algo == "tilt" else bon_weights(z["proxy"], int(x))
                s = shift(e, w, q=TAIL_Q)
            else:  # trained: only the row's means
                mean = (r[M.PROXY] - mom["proxy_mean"]) / mom["proxy_sd"] - (r[M.UTILITY] - mom["utility_mean"]) / mom[
                    "utility_sd"
                ]
                s = {"mean": float(mean), "tail_mass": float("nan")}
            rows.append({"algo": algo, "x_name": r["x_name"], "x": x, "kl": float(r[M.KL]), **s})
        rec["points"] = rows
        strongest = {}
        for algo in POOL_ALGOS:
            sub = g[g["algo"] == algo]
            if sub.empty:
                continue
            r = sub.loc[sub[M.KL].idxmax()]
            x = float(r["x"])
            w = tilt_weights(z["proxy"], x) if algo == "tilt" else bon_weights(z["proxy"], int(x))
            draws = weighted_resample(e, w, min(e.size, 20_000))
            s = shift(e, w, q=TAIL_Q)
            strongest[algo] = {
                "x": x,
                "kl": float(r[M.KL]),
                "verdict": _tail_verdict(draws),
                "tail_mass": s["tail_mass"],
                "moved": s["tail_mass"] >= MOVED_FACTOR * (1 - TAIL_Q),
            }
        rec["strongest"] = strongest
        fits = {}
        for algo, sub in g.groupby("algo", sort=False):
            sub = sub[sub[M.KL] > 0]
            if len(sub) < 3:
                continue
            fit = (fit_bon if algo == "bon" else fit_rl)(sub[M.KL].to_numpy(float), sub[M.GAIN_UTILITY].to_numpy(float))
            i = int(sub[M.GAIN_UTILITY].to_numpy(float).argmax())
            fits[str(algo)] = {"fit": fit, "observed_peak_kl": float(sub[M.KL].to_numpy(float)[i])}
        rec["fits"] = fits
        out.append(rec)
    return sorted(out, key=lambda r: (r["card"].get("n_pairs") is None, r["card"].get("n_pairs") or 0))


def _peak_trend(records: list[dict[str, Any]]) -> list[str]:
    """Per optimizer: fitted peak KL by data size, and whether it rises with it."""
    lines = []
    algos = sorted({a for r in records for a in r["fits"]})
    for algo in algos:
        pts = [
            (r["card"].get("n_pairs"), r["fits"][algo]["fit"], Path(r["path"]).name)
            for r in records
            if algo in r["fits"] and r["card"].get("n_pairs")
        ]
        if len(pts) < 2:
            continue
        pts.sort(key=lambda t: t[0])
        cells = [
            f"{n} pairs: KL* {f.kl_star:.3g} [{f.kl_star_ci[0]:.3g}, {f.kl_star_ci[1]:.3g}]{'' if f.sound else ' (unsound)'}"
            for n, f, _ in pts
        ]
        good = [f for _, f, _ in pts if f.sound and np.isfinite(f.kl_star)]
        sound = [f.kl_star for f in good]
        if len(sound) < 2:
            trend = "too few sound fits to say"
        elif all(b > a for a, b in zip(sound, sound[1:])):
            trend = "the fitted peak moves to larger KL as data grow (Gao et al. saw this for reward-model size)"
        elif all(b < a for a, b in zip(sound, sound[1:])):
            trend = "the fitted peak moves to smaller KL as data grow (opposite to Gao et al.'s size trend)"
        else:
            trend = "no monotone trend of the fitted peak with data size"
        if len(sound) >= 2 and good[0].kl_star_ci[1] >= good[-1].kl_star_ci[0]:
            trend += "; but the smallest and largest data size's intervals overlap: not significant at this size"
        lines.append(f"- {algo}: " + "; ".join(cells) + f". Verdict: {trend}.")
    return lines


def learned_error_markdown(records: list[dict[str, Any]]) -> list[str]:
    if not records:
        return []
    lines = [
        "",
        "## Learned reward: its error, and whether optimization moved into its tail",
        "",
        "error e = (proxy - mean0 proxy)/sd0 proxy - (gold - mean0 gold)/sd0 gold, moments over the base pool and",
        f"kept fixed under optimized policies. 'tail mass' = share of the policy's mass above the base error's "
        f"q{TAIL_Q:g} ({1 - TAIL_Q:.0%} under the base); 'moved into its tail' when it is >= {MOVED_FACTOR:g}x that. "
        "Tilt and best-of-n are exact pool reweightings; trained optimizers report the mean only.",
        "",
    ]
    for r in records:
        c = r["card"]
        name = Path(r["path"]).name
        head = f"### `{name}`"
        if c:
            head += (
                f": {c.get('n_pairs')} pairs, held-out accuracy vs gold {c.get(M.RM_HELDOUT_ACCURACY, float('nan')):.3f}, "
                f"Spearman {c.get(M.RM_HELDOUT_SPEARMAN, float('nan')):.3f}"
            )
        if r["base"] is None:
            lines += [
                head,
                "",
                f"Under the base policy: no tail verdict (the pool has fewer than {TAIL_MIN} samples).",
                "",
            ]
        else:
            lines += [head, "", f"Under the base policy the error is **{r['base'].verdict}**.", "", "```"]
            lines += [r["base"].table(), "```", ""]
        for algo, s in r["strongest"].items():
            moved = "moved into the error's tail" if s["moved"] else "did not move into the error's tail"
            lines.append(
                f"- {algo} at its strongest (x={s['x']:g}, KL {s['kl']:.2f}): tail mass {s['tail_mass']:.3f}, {moved}; "
                f"error under it reads **{s['verdict'].verdict if s['verdict'] else 'no tail verdict (pool too small)'}** "
                "(weighted resample of the pool)."
            )
        lines += ["", "| algo | knob | KL | mean e | tail mass |", "|---|---|---|---|---|"]
        for p in r["points"]:
            tm = "" if not np.isfinite(p["tail_mass"]) else f"{p['tail_mass']:.3f}"
            lines.append(f"| {p['algo']} | {p['x_name']}={p['x']:g} | {p['kl']:.3f} | {p['mean']:+.3f} | {tm} |")
        if r["fits"]:
            lines += ["", "Gao fits of gold gain against KL:", "", "```"]
            lines += [
                f"{a}: {f['fit']}  (observed peak at KL {f['observed_peak_kl']:.3g})" for a, f in r["fits"].items()
            ]
            lines += ["```"]
        lines.append("")
    trend = _peak_trend(records)
    if trend:
        lines += ["### Does the fitted peak move with data size?", "", *trend, ""]
    return lines
