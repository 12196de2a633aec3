"""Other trainers' sample dumps -> the `goodhart analyze` schema (docs/integrations.md).

Each function reads what that trainer writes (formats as read from their source; cited in
docs/integrations.md) and returns a table with the schema's columns. What the dumps do not hold
is passed in: which reward column is the proxy and which the gold, and the KL of each step.

    python examples/convert_dumps.py verl  VAL_DIR     --proxy score --gold acc --kl kl.csv --out samples.csv
    python examples/convert_dumps.py openrlhf DIR      --proxy reward --gold gold_reward --kl kl.csv --out samples.csv
    python examples/convert_dumps.py trl   OUTPUT_DIR  --proxy my_reward --gold utility --out samples.csv

kl.csv: two columns, `point` (the step) and `kl` (the policy's mean sequence KL to the base at that
step, from your logger). The base policy's rows are the dump of step 0 (verl: `val_before_train`),
or of the base model (OpenRLHF: a file named base.jsonl).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def _kl_column(df: pd.DataFrame, kl: pd.DataFrame | None) -> pd.DataFrame:
    if kl is None:
        return df
    table = dict(zip(kl["point"].astype(str), kl["kl"].astype(float)))
    df = df.copy()
    df["kl"] = [0.0 if p == "base" else table.get(p, float("nan")) for p in df["point"]]
    return df


def from_verl(val_dir: Path, proxy: str = "score", gold: str | None = None, kl: pd.DataFrame | None = None):
    """verl's validation (or rollout) dumps: one `<step>.jsonl` per step, one line per sample with
    `input`, `output`, `score`, `step` and the reward function's extra keys. Step 0 is the base."""
    rows = [pd.read_json(f, lines=True) for f in sorted(Path(val_dir).glob("*.jsonl"), key=lambda p: int(p.stem))]
    d = pd.concat(rows, ignore_index=True)
    out = pd.DataFrame({"point": d["step"].astype(str), "prompt": d["input"], "proxy": d[proxy]})
    if gold is not None:
        out["utility"] = d[gold]
    out.loc[out["point"] == "0", "point"] = "base"
    return _kl_column(out, kl)


def from_openrlhf(dump_dir: Path, proxy: str = "reward", gold: str | None = None, kl: pd.DataFrame | None = None):
    """OpenRLHF's batch_inference outputs, one JSONL per checkpoint named `<step>.jsonl` (and the base
    model's `base.jsonl`): lines with `input`, `output` and, after `--eval_task rm`, `reward`. Score the
    same file with the gold reward model and merge its `reward` in as another key to pass `gold`."""
    rows = []
    for f in sorted(Path(dump_dir).glob("*.jsonl")):
        d = pd.read_json(f, lines=True)
        t = pd.DataFrame({"point": f.stem, "prompt": d["input"], "proxy": d[proxy]})
        if gold is not None:
            t["utility"] = d[gold]
        rows.append(t)
    return _kl_column(pd.concat(rows, ignore_index=True), kl)


def from_trl(output_dir: Path, proxy: list[str], gold: str | None = None, weights: list[float] | None = None):
    """TRL's completion logs (GRPOConfig / RLOOConfig `log_completions=True`): one
    `completions/completions_<step>.parquet` per logging step with `step`, `prompt`, `completion`,
    one column per reward function and `advantage`. The KL per step is read from the newest
    checkpoint's trainer_state.json (TRL's per-token `kl` x `completions/mean_length`; needs beta > 0).
    There are no base rows: add the callback's base samples (goodhart_base.npz / its samples_file)
    or your own, and analyze with `--pairing global` (training prompts are not the base's)."""
    import json

    files = sorted((Path(output_dir) / "completions").glob("completions_*.parquet"))
    d = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    w = weights or [1.0] * len(proxy)
    out = pd.DataFrame({"point": d["step"].astype(str), "prompt": d["prompt"].astype(str)})
    out["proxy"] = sum(wi * d[c].astype(float).fillna(0.0) for wi, c in zip(w, proxy))
    if gold is not None:
        out["utility"] = d[gold].astype(float)
    states = sorted(Path(output_dir).glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name[11:]))
    if states:
        hist = json.loads(states[-1].read_text())["log_history"]
        kl = {
            str(h["step"]): float(h["kl"]) * float(h["completions/mean_length"])
            for h in hist
            if "kl" in h and "completions/mean_length" in h
        }
        out["kl"] = out["point"].map(kl)
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", choices=["verl", "openrlhf", "trl"])
    ap.add_argument("path")
    ap.add_argument("--proxy", required=True, help="the reward column(s) the run optimized (trl: comma-separated)")
    ap.add_argument("--gold", default=None, help="the gold utility's column, if the dump has one")
    ap.add_argument("--kl", default=None, help="verl / openrlhf: a CSV with columns point, kl")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    kl = pd.read_csv(args.kl) if args.kl else None
    if args.source == "verl":
        df = from_verl(Path(args.path), args.proxy, args.gold, kl)
    elif args.source == "openrlhf":
        df = from_openrlhf(Path(args.path), args.proxy, args.gold, kl)
    else:
        df = from_trl(Path(args.path), args.proxy.split(","), args.gold)
    df.to_csv(args.out, index=False)
    print(f"{len(df)} rows, {df['point'].nunique()} points -> {args.out}")
    return df


if __name__ == "__main__":
    main()
