"""Every benchmark in one process, then one summary of the headline figures and ratios.

    python benchmarks/run_all.py --quick               # every figure, a few minutes on 2 cores
    python benchmarks/run_all.py                       # full sizes (tens of minutes on a CPU)
    python benchmarks/run_all.py --quick --device cuda # on a GPU node
    python benchmarks/run_all.py --smoke --out DIR     # the smallest case of each (CI)

Writes DIR/<benchmark>.json and DIR/summary.json (default DIR: benchmarks/results/). A
benchmark that fails is reported (with its error) and the others still run; the exit status
is then 1. Timings are not asserted anywhere: on a shared machine read them with the load
averages recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

ORDER = ["rl_step", "sampling", "generation", "sweep_economics", "scaling", "end_to_end"]


def _module(name: str):
    import importlib

    return importlib.import_module(f"bench_{name}")


def headline(name: str, doc: dict) -> dict:
    """The figures of one benchmark that the README's Performance section quotes."""
    if name == "rl_step":
        out = {f"{r['algo']}_pipeline_over_plain": r["ratio"] for r in doc["rows"]}
        out |= {f"{r['algo']}_plain_step_s": r["plain_s"] for r in doc["rows"]}
        out["ppo_over_plain_rloo"] = doc["ppo_over_plain_rloo"]
        return out
    if name == "sampling":
        out = {f"{r['reward']}_throughput_ratio": r["throughput_ratio"] for r in doc["rows"]}
        out |= {f"{r['reward']}_pipeline_samples_per_s": r["pipeline_per_s"] for r in doc["rows"]}
        out["batch_size_sampling"] = doc["batch_size_sampling"]
        out["batch_size_hf_reward"] = doc["batch_size_hf_reward"]
        return out
    if name == "generation":
        keys = ("model", "threads", "pipeline_over_plain", "pipeline_tokens_per_s", "plain_tokens_per_s")
        return {k: doc[k] for k in (*keys, "minutes_per_1k_samples", "same_samples")}
    if name == "sweep_economics":
        return {
            "tilt_cheaper_wall": doc["wall_ratio"],
            "tilt_cheaper_samples": doc["samples_ratio"],
            "ppo_extrapolated": doc["ppo"]["extrapolated"],
            "ratio_is_lower_bound": doc["ratio_is_lower_bound"],
        }
    if name == "scaling":
        out = {}
        for k in ("pool_distributional", "pool_model", "bon_n", "points"):
            out[f"{k}_time_exponent"] = doc[k]["time_exponent"]
            out[f"{k}_memory_exponent"] = doc[k]["memory_exponent"]
        out["model_size"] = doc["model_size"]["smollm2"]
        return out
    if name == "end_to_end":
        out = {"points": doc["points"], "mlflow": doc["mlflow"], "wall_s": doc["wall_seconds_sweep"]}
        out["peak_rss_mib"] = doc["peak_rss_mib"]
        off = [r for r in doc["runs"] if not r["mlflow"]]
        if doc["mlflow"] and off:
            out["wall_s_without_mlflow"] = off[0]["wall_seconds"]
            out["peak_rss_mib_without_mlflow"] = off[0]["peak_rss_mib"]
            out["mlflow_overhead_wall"] = doc.get("mlflow_overhead_wall")
            out["mlflow_overhead_cpu"] = doc.get("mlflow_overhead_cpu")
        return out
    return {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small sizes: every figure in minutes")
    g.add_argument("--smoke", action="store_true", help="the smallest case of each figure (CI: seconds)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    ap.add_argument("--out", type=Path, default=B.RESULTS, help="folder for the JSON files")
    ap.add_argument("--only", nargs="+", choices=ORDER, default=ORDER, help="run only these benchmarks")
    a = ap.parse_args(argv)
    mode = "smoke" if a.smoke else "quick" if a.quick else "full"
    gpu = B.check_device(a.device)
    if gpu is None:
        return 2
    started = time.perf_counter()
    B.say(f"goodhart benchmarks, mode {mode}, device {a.device} ({gpu}); load averages at start {B.load_avg()}")
    docs, failed = {}, {}
    for name in a.only:
        opts = B.Opts(mode, a.device, a.out / f"{name}.json")
        t0 = time.perf_counter()
        try:
            docs[name] = _module(name).run(opts)
        except Exception as e:  # one broken benchmark must not hide the others' figures
            failed[name] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        B.say(f"[{name}: {time.perf_counter() - t0:.0f}s]")
    summary = {
        "mode": mode,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": B.machine(a.device),
        "headline": {k: headline(k, v) for k, v in docs.items()},
        "failed": failed,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    B.say(f"\n== summary ({mode}, {summary['wall_seconds']:.0f}s, load averages now {B.load_avg()})")
    for k, v in summary["headline"].items():
        B.say(f"{k}: " + ", ".join(f"{x}={y:.3g}" if isinstance(y, float) else f"{x}={y}" for x, y in v.items()))
    for k, v in failed.items():
        B.say(f"{k}: FAILED {v}")
    B.say(f"JSON: {a.out}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
