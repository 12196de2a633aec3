"""Where MLflow's share of a small sweep goes, and what the store settings save: a new SQLite
store (MLflow's schema creation) and one point's calls (create the run, ~60 params, 5 steps of
20 metrics, a small artifact, end it), each timed in a fresh process, interleaved:

    mlflow    MLflow as it comes (rollback journal, synchronous=FULL, its ~50 migrations per new store)
    goodhart  what `goodhart` runs (pipeline/sweeps/sqlite_store.py): WAL + synchronous=NORMAL, and
              a new store copied from an empty one built once per machine

Wall and CPU seconds (user + sys of the child) are both given: on a busy machine the wall
figure carries the neighbours' load, the CPU one does not, and an fsync shows in neither's CPU.

    python benchmarks/bench_mlflow.py [--quick | --smoke] [--out FILE]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

CHILD = r"""
import json, sys, time
mode, db, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from pathlib import Path
t0 = time.perf_counter(); c0 = time.process_time()
if mode == "goodhart":
    from goodhart.pipeline.sweeps.sqlite_store import fast_sqlite_commits, seed_new_store
    fast_sqlite_commits()
    seed_new_store(Path(db))
c = MlflowClient("sqlite:///" + db)
exp = c.create_experiment("bench")
store = (time.perf_counter() - t0, time.process_time() - c0)
art = Path(db).parent / "config.yaml"
art.write_text("a: 1\n" * 50)
per = []
for i in range(runs):
    t0 = time.perf_counter(); c0 = time.process_time()
    r = c.create_run(exp, run_name=f"p{i}", tags={"goodhart.point_id": str(i)}).info.run_id
    c.log_batch(r, params=[Param(f"cfg.k{j}", "v") for j in range(60)])
    for s in range(5):
        c.log_batch(r, metrics=[Metric(f"train/m{j}", 0.5, 0, s) for j in range(20)])
    c.log_artifact(r, str(art))
    c.set_terminated(r)
    per.append((time.perf_counter() - t0, time.process_time() - c0))
print("RESULT=" + json.dumps({"store": store, "per_run": per}))
"""


def _once(mode: str, runs: int, cache: Path) -> dict:
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "GOODHART_CACHE": str(cache), "MLFLOW_DISABLE_TELEMETRY": "true"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(Path(d) / "mlflow.db"), str(runs)],
            cwd=d,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        import json

        doc = json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT="))[7:])
    doc["process_wall"] = wall
    doc["process_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return doc


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    rounds = opts.pick(1, 3, 5)
    runs = opts.pick(2, 10, 20)
    cache = Path(tempfile.mkdtemp(prefix="gh-mlflow-cache-"))
    _once("goodhart", 1, cache)  # the one-time template build, outside the clock (like the model's)
    got: dict[str, list[dict]] = {"mlflow": [], "goodhart": []}
    load = [B.load_avg()]
    for i in range(rounds):
        for mode in ["mlflow", "goodhart"] if i % 2 == 0 else ["goodhart", "mlflow"]:
            got[mode].append(_once(mode, runs, cache))
        load.append(B.load_avg())
    rows = []
    for mode, docs in got.items():
        per_w = [w for d in docs for w, _ in d["per_run"]]
        per_c = [c for d in docs for _, c in d["per_run"]]
        rows.append(
            {
                "store": mode,
                "new_store_wall_s": B.median([d["store"][0] for d in docs]),
                "new_store_cpu_s": B.median([d["store"][1] for d in docs]),
                "per_point_wall_s": B.median(per_w),
                "per_point_cpu_s": B.median(per_c),
                "process_cpu_s": B.median([d["process_cpu"] for d in docs]),
            }
        )
    cols = ["store", "new_store_wall_s", "new_store_cpu_s", "per_point_wall_s", "per_point_cpu_s", "process_cpu_s"]
    B.say(f"MLflow on SQLite, {rounds} round(s) x {runs} point-sized runs; load averages {load[0]} -> {load[-1]}")
    B.say(B.table(rows, cols))
    return B.write_json(opts.out, "mlflow", opts, {"rounds": rounds, "runs": runs, "rows": rows, "load": load}, started)


if __name__ == "__main__":
    run(B.parse_opts(None, "mlflow", __doc__))
