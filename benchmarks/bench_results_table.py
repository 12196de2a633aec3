"""What keeping results.csv/.parquet current costs in a sweep of N points: one rewrite
(`write_results`: read every point, write both tables atomically) at N = 20 .. 2,000, and the
total over a whole sweep when the table is rewritten after every point (the old way) or at the
bounded rate of `ResultsWriter` (pipeline/sweeps/record.py), for points that take 0.1, 1 or
10 s each. The points are synthetic copies of a real result row; nothing runs a model.

    python benchmarks/bench_results_table.py [--quick | --smoke] [--out FILE]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

ROW = {
    "point_id": "",
    "status": "done",
    "name": "bench",
    "algo": "tilt",
    "error_law": "gaussian x1",
    "x_name": "beta",
    "x": 1.0,
    "seed": 0,
    "reward/proxy": 1.0,
    "reward/utility": 0.5,
    "gain/proxy": 1.0,
    "gain/utility": 0.5,
    "kl": 0.3,
    "seconds": 0.1,
    "warnings": "",
    "mlflow_run_id": None,
}
ROW.update({f"extra/m{i}": 0.1 * i for i in range(40)})  # a real row has ~60 columns


def make_sweep(root: Path, n: int) -> None:
    entries = []
    for i in range(n):
        pid = f"p{i:06d}"
        d = root / "points" / pid
        d.mkdir(parents=True, exist_ok=True)
        (d / "result.json").write_text(json.dumps({**ROW, "point_id": pid, "x": float(i)}))
        entries.append({"index": i, "id": pid, "overrides": {"algo.kl.coef": float(i), "reward": "gaussian"}})
    (root / "points.json").write_text(json.dumps(entries))


def simulate(costs: dict[int, float], n: int, point_s: float, bounded: bool) -> tuple[float, int]:
    """(seconds spent rewriting, rewrites) over a sweep of n points finishing every point_s."""
    from goodhart.pipeline.sweeps import record

    sizes = sorted(costs)

    def cost(k: int) -> float:  # linear interpolation between the measured sizes
        for a, b in zip(sizes, sizes[1:]):
            if k <= b:
                return costs[a] + (costs[b] - costs[a]) * (k - a) / (b - a)
        return costs[sizes[-1]] * k / sizes[-1]

    if not bounded:
        return sum(cost(k) for k in range(1, n + 1)), n
    clock = {"t": 0.0, "done": 0, "spent": 0.0}
    w = record.ResultsWriter(Path("."), clock=lambda: clock["t"])
    real = record.write_results

    def fake(root):
        c = cost(clock["done"])
        clock["t"] += c
        clock["spent"] += c

    record.write_results = fake
    try:
        for k in range(1, n + 1):
            clock["t"] += point_s
            clock["done"] = k
            w.maybe()
        fake(None)  # the final, complete write
    finally:
        record.write_results = real
    return clock["spent"], w.writes + 1


def run(opts: B.Opts) -> dict:
    from goodhart.pipeline.sweeps.record import write_results

    started = time.perf_counter()
    sizes = opts.pick([20, 200], [20, 200, 2000], [20, 200, 2000, 5000])
    reps = opts.pick(1, 3, 5)
    costs, rows = {}, []
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            root = Path(d) / f"s{n}"
            make_sweep(root, n)
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                write_results(root)
                ts.append(time.perf_counter() - t0)
            costs[n] = B.median(ts)
            rows.append({"points": n, "one_rewrite_s": costs[n]})
    B.say(f"one rewrite of results.csv + .parquet (median of {reps}; load {B.load_avg()})")
    B.say(B.table(rows, ["points", "one_rewrite_s"]))
    total_rows = []
    n = sizes[-1]
    for point_s in (0.1, 1.0, 10.0):
        old, old_n = simulate(costs, n, point_s, bounded=False)
        new, new_n = simulate(costs, n, point_s, bounded=True)
        total_rows.append(
            {
                "points": n,
                "point_s": point_s,
                "every_point_s": old,
                "every_point_writes": old_n,
                "bounded_s": new,
                "bounded_writes": new_n,
                "sweep_share_bounded": new / (n * point_s + new),
            }
        )
    B.say(f"\nover a whole sweep of {n} points")
    B.say(
        B.table(
            total_rows,
            [
                "points",
                "point_s",
                "every_point_s",
                "every_point_writes",
                "bounded_s",
                "bounded_writes",
                "sweep_share_bounded",
            ],
        )
    )
    return B.write_json(opts.out, "results_table", opts, {"rewrite": rows, "sweep_totals": total_rows}, started)


if __name__ == "__main__":
    run(B.parse_opts(None, "results_table", __doc__))
