"""How often does the online alarm fire on the base policy itself, and do the trained runs'
in-time alarms survive a noise test against it? (docs/alarm.md, "What an `alarm` at KL near 0
means on a heavy pool".)

    python examples/alarm_base_noise.py runs/alarm_bench_ppo runs/alarm_trained

For every base pool of the sweeps: the share of draws at which a check says `alarm` when its
batch is the base policy's own samples, resampled from the pool -- a fresh batch (`--per-prompt`
samples per eval prompt, per-prompt base) and a training batch (`--batch` samples, global base),
at KL `--kl`. Then every logged online check (train_metrics.jsonl) re-decided with one more
condition: the gain above the 0.95 quantile of the base policy's own batch gains at the same
batch shape; first alarms and in-time counts (first alarm at or before the smoothed utility
peak) with and without it. Reads the points' files only; utility is read to score, never to
decide.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from goodhart.eval.alarm import AlarmRule, BaseStats, alarm, decide
from goodhart.pipeline.report.alarm_eval import law_is_light


def points(dirs: list[Path]):
    """(sweep dir, result row, point dir) of every finished point."""
    for root in dirs:
        for d in sorted((root / "points").glob("*")):
            f = d / "result.json"
            if f.is_file():
                yield root, json.loads(f.read_text()), d


def base_gain_quantile(b: np.ndarray, m: int, rng, k: int = 999, q: float = 0.95) -> float:
    """The q quantile of the base policy's own batch gain: m samples per prompt of the pool b
    (P, N), each centred on its prompt's mean, k resamples."""
    P, N = b.shape
    idx = rng.integers(0, N, size=(k, P, m))
    g = (b[np.arange(P)[None, :, None], idx] - b.mean(1)[None, :, None]).mean((1, 2))
    return float(np.quantile(g, q))


def base_rates(dirs, per_prompt: int, batch: int, kl: float, draws: int, rule: AlarmRule, rng) -> pd.DataFrame:
    rows, seen = [], set()
    for root, r, _ in points(dirs):
        f = root / r["pool_file"]
        if f.name in seen:  # one pool (its content hash) shared by several points or sweeps
            continue
        seen.add(f.name)
        b = np.load(f)["proxy"]
        fresh_base, batch_base = BaseStats.for_rule(b, rule), BaseStats.for_rule(b, rule, per_prompt=False)
        fresh = sum(
            alarm(
                np.take_along_axis(b, rng.integers(0, b.shape[1], (b.shape[0], per_prompt)), 1),
                kl,
                fresh_base,
                rule=rule,
            ).level
            == "alarm"
            for _ in range(draws)
        )
        trained = sum(
            alarm(b.ravel()[rng.integers(0, b.size, batch)], kl, batch_base, rule=rule).level == "alarm"
            for _ in range(draws)
        )
        law = str(r["error_law"]).split("(")[0].split(" ")[0]
        rows.append({"law": law, "pool": f.name, "fresh batch": fresh / draws, "training batch": trained / draws})
    return pd.DataFrame(rows).sort_values(["law", "pool"])


def redecided(dirs, per_prompt: int, rule: AlarmRule, rng, smooth: int = 5) -> pd.DataFrame:
    rows = []
    for root, r, d in points(dirs):
        log = d / "train_metrics.jsonl"
        if not log.is_file():
            continue
        h = pd.DataFrame([json.loads(line) for line in log.read_text().splitlines() if line]).set_index("step")
        if "alarm/code" not in h:
            continue
        peak = int(h["reward/utility"].rolling(smooth, center=True, min_periods=1).mean().idxmax())
        floor = base_gain_quantile(np.load(root / r["pool_file"])["proxy"], per_prompt, rng)
        first = {"as logged": None, "with the noise test": None}
        for step, e in h.dropna(subset=["alarm/code"]).iterrows():
            gain = e["alarm/dv_ratio"] * e["alarm/dv_bound"]
            level = decide(
                gain,
                e["alarm/sigma_bulk"],
                e["alarm/p_value"],
                e["alarm/tail_share"],
                rule,
                e["alarm/n_eff"],
                e["alarm/tail_p"],
            )[1]
            if level == "alarm" and first["as logged"] is None:
                first["as logged"] = step
            if level == "alarm" and gain > floor and first["with the noise test"] is None:
                first["with the noise test"] = step
        rows.append({"sweep": root.name, "error_law": r["error_law"], "seed": r["seed"], "peak_step": peak, **first})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "sweeps", nargs="+", type=Path, help="sweep directories of trained runs (points/*/train_metrics.jsonl)"
    )
    p.add_argument("--per-prompt", type=int, default=4, help="the fresh batch's samples per eval prompt (default 4)")
    p.add_argument("--batch", type=int, default=32, help="the training batch's size (default 32)")
    p.add_argument("--kl", type=float, default=0.01, help="the KL a base-policy check is read at (default 0.01)")
    p.add_argument("--draws", type=int, default=300, help="base-policy draws per pool (default 300)")
    a = p.parse_args(argv)
    rule, rng = AlarmRule(), np.random.default_rng(0)
    pd.set_option("display.width", 200)
    rates = base_rates(a.sweeps, a.per_prompt, a.batch, a.kl, a.draws, rule, rng)
    print("share of base-policy checks at `alarm` (min and max over each law's pools):")
    cols = ["fresh batch", "training batch"]
    table = rates.groupby("law")[cols].agg(["min", "max"])
    table.columns = [f"{c} {f}" for c, f in table.columns]
    table["pools"] = rates.groupby("law").size()
    print(table.round(3).to_string())
    t = redecided(a.sweeps, a.per_prompt, rule, rng)
    if t.empty:
        return 0
    print("\nlogged online checks re-decided (first alarm step):")
    print(t.to_string(index=False))
    heavy = t[~t["error_law"].map(lambda s: law_is_light(str(s)))]
    for col in ("as logged", "with the noise test"):
        ok = heavy[col].notna() & (heavy[col] <= heavy["peak_step"])
        light = t.loc[t["error_law"].map(lambda s: law_is_light(str(s))), col].notna().sum()
        print(f"{col}: heavy runs in time {int(ok.sum())} of {len(heavy)}; light runs alarmed {int(light)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
