"""How often does the online alarm fire on the base policy itself, and do the trained runs'
in-time alarms survive a noise test against it? (docs/results.md, "What an `alarm` at KL near 0
means on a heavy pool".)

    python examples/alarm_base_noise.py runs/alarm_bench_ppo runs/alarm_trained

For every base pool of the sweeps: the share of draws at which a check says `alarm` when its
batch is the base policy's own samples, resampled from the pool -- a fresh batch (`--per-prompt`
samples per eval prompt, per-prompt base) and a training batch (`--batch` samples, global base),
at KL `--kl`. Then every logged online check (train_metrics.jsonl) re-decided under the current
rule without and with its base-noise test (added in alarm rule 4: eval/alarm.py BaseStats.noise_p,
the gain against the base policy's own batches of the same shape); first alarms and in-time counts
(first alarm at or before the smoothed utility peak) under each. A check logged before rule 5 has
no local tail test (`alarm/local_p`): re-decided, it reads `watch` at most. Reads the points' files only; utility is read to score, never to
decide.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule, BaseStats, alarm, decide, decide_row
from goodhart.pipeline.report.alarm_eval import law_is_light


def points(dirs: list[Path]):
    """(sweep dir, result row, point dir) of every finished point."""
    for root in dirs:
        for d in sorted((root / "points").glob("*")):
            f = d / "result.json"
            if f.is_file():
                yield root, json.loads(f.read_text()), d


def _levels(a, rule: AlarmRule) -> tuple[bool, bool]:
    """(alarm without the base-noise test, alarm under the rule) of one Alarm."""
    bare = decide(a.gain, a.sigma, a.p_value, a.tail_share, rule, a.n_eff, a.tail_p, local_p=a.local_p)[1]
    return bare == "alarm", a.level == "alarm"


def base_rates(dirs, per_prompt: int, batch: int, kl: float, draws: int, rule: AlarmRule, rng) -> pd.DataFrame:
    """Per base pool: the share of checks at `alarm` when the batch is the base policy's own."""
    rows, seen = [], set()
    for root, r, _ in points(dirs):
        f = root / r["pool_file"]
        if f.name in seen:  # one pool (its content hash) shared by several points or sweeps
            continue
        seen.add(f.name)
        b = np.load(f)["proxy"]
        fresh_base, batch_base = BaseStats.for_rule(b, rule), BaseStats.for_rule(b, rule, per_prompt=False)
        fresh = np.mean(
            [
                _levels(
                    alarm(
                        np.take_along_axis(b, rng.integers(0, b.shape[1], (b.shape[0], per_prompt)), 1),
                        kl,
                        fresh_base,
                        rule=rule,
                    ),
                    rule,
                )
                for _ in range(draws)
            ],
            axis=0,
        )
        trained = np.mean(
            [
                _levels(alarm(b.ravel()[rng.integers(0, b.size, batch)], kl, batch_base, rule=rule), rule)
                for _ in range(draws)
            ],
            axis=0,
        )
        law = str(r["error_law"]).split("(")[0].split(" ")[0]
        rows.append(
            {
                "law": law,
                "pool": f.name,
                "fresh, no noise test": fresh[0],
                "fresh, with it": fresh[1],
                "training, no noise test": trained[0],
                "training, with it": trained[1],
            }
        )
    return pd.DataFrame(rows).sort_values(["law", "pool"])


def redecided(dirs, rule: AlarmRule, smooth: int = 5) -> pd.DataFrame:
    """First alarm of each trained run's logged checks under the current rule, decided without the
    base-noise test and with it (BaseStats.noise_p on the run's own base pool and batch shape --
    what the run would have logged; checks logged before rule 4 carry no noise test of their own)."""
    rows = []
    for root, r, d in points(dirs):
        log = d / "train_metrics.jsonl"
        if not log.is_file():
            continue
        h = pd.DataFrame([json.loads(line) for line in log.read_text().splitlines() if line]).set_index("step")
        if M.ALARM_CODE not in h:
            continue
        peak = int(h[M.UTILITY].rolling(smooth, center=True, min_periods=1).mean().idxmax())
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        m = int(cfg.get("algo", {}).get("alarm_samples", 0))
        pool = np.load(root / r["pool_file"])["proxy"]
        base = BaseStats.for_rule(pool, rule, per_prompt=m > 0)  # the monitor's: pool_base or base
        first = {"without the noise test": None, "with it": None}
        for step, e in h.dropna(subset=[M.ALARM_CODE]).iterrows():
            gain = e[M.ALARM_DV_RATIO] * e[M.ALARM_DV_BOUND]
            shape = (pool.shape[0], m) if m else (1, int(e[M.ALARM_N_EFF]))
            for key, noise in (("without the noise test", math.nan), ("with it", base.noise_p(gain, shape, rule))):
                if first[key] is None and decide_row(e.to_dict() | {M.ALARM_NOISE_P: noise}, rule)[1] == "alarm":
                    first[key] = step
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
    cols = [c for c in rates.columns if c not in ("law", "pool")]
    table = rates.groupby("law")[cols].agg(["min", "max"])
    table.columns = [f"{c} {f}" for c, f in table.columns]
    table["pools"] = rates.groupby("law").size()
    print(table.round(3).to_string())
    t = redecided(a.sweeps, rule)
    if t.empty:
        return 0
    print("\nlogged online checks re-decided (first alarm step):")
    print(t.to_string(index=False))
    heavy = t[~t["error_law"].map(lambda s: law_is_light(str(s)))]
    for col in ("without the noise test", "with it"):
        ok = heavy[col].notna() & (heavy[col] <= heavy["peak_step"])
        light = t.loc[t["error_law"].map(lambda s: law_is_light(str(s))), col].notna().sum()
        print(f"{col}: heavy runs in time {int(ok.sum())} of {len(heavy)}; light runs alarmed {int(light)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
