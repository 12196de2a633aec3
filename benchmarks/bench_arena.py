"""What the arena costs: `goodhart sweep configs/sweep/arena.yaml` then `goodhart report` from an
empty directory, each in a fresh process, with wall and CPU seconds and the load averages.

    python benchmarks/bench_arena.py --quick   # the sweep file's quick variant (runs/arena_quick)
    python benchmarks/bench_arena.py           # the default arena (runs/arena)
    python benchmarks/bench_arena.py --smoke   # one law, one seed, two columns (seconds: CI)

Writes benchmarks/results/arena.json (`--out` for another path). Nothing is asserted: on a shared
machine read the figures with the load averages beside them.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

SMOKE = ["--only", "reward.error=gaussian", "--only", "seed=0", "--only", "sampling.n=4096", "--branch", "kl"]


def timed(cmd: list[str], cwd: Path) -> dict:
    """Wall and CPU (user + system, the process and its children) seconds of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, t0 = B.load_avg(), time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {r.returncode}): {r.stderr[-2000:]}")
    return {"cmd": " ".join(cmd[1:]), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load": [load0, B.load_avg()]}


def main(argv: list[str] | None = None) -> dict:
    opts = B.parse_opts(argv, "arena", __doc__)
    goodhart = str(Path(sys.executable).parent / "goodhart")
    sweep = str(B.REPO / "configs" / "sweep" / "arena.yaml")
    extra = {"smoke": SMOKE, "quick": ["--quick"], "full": []}[opts.mode]
    name = "arena_quick" if opts.mode == "quick" else "arena"
    with tempfile.TemporaryDirectory() as d:
        cwd = Path(d)
        s = timed([goodhart, "sweep", sweep, "--quiet", *extra], cwd)
        r = timed([goodhart, "report", f"runs/{name}", "--no-mlflow"], cwd)
        points = len(json.loads((cwd / "runs" / name / "points.json").read_text()))
    doc = {"mode": opts.mode, "points": points, "sweep": s, "report": r, "machine": B.machine()}
    print(
        f"arena ({opts.mode}, {points:,} points): sweep {s['wall_s']:.0f} s wall ({s['cpu_s']:.0f} s CPU), "
        f"report {r['wall_s']:.0f} s wall ({r['cpu_s']:.0f} s CPU); load averages {s['load'][0]} -> {r['load'][1]}"
    )
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(doc, indent=1))
    return doc


if __name__ == "__main__":
    main()
