"""The distributional sweep as a user runs it: `goodhart sweep configs/sweep/distributional.yaml`
(64 points: 4 error laws x 8 tilt betas + 8 best-of-n n, 32 prompts x 65,536 samples), each run
a fresh process in an empty directory with MLflow off (its cost is bench_end_to_end.py's).

Three runs: with an empty statistics cache (`cold`: every pool's alarm null is built once, by
the first point that needs it, and shared through $GOODHART_CACHE/stats with the others), again
on the cache that run left (`warm`: a second sweep on the same pools, e.g. another output folder
or an added knob), and cold with --jobs 1 (one process: what the cache and the cheaper points
give without a second worker). Wall and CPU seconds (user + sys of the sweep and its workers:
the CPU figure does not carry a busy machine's load) and the load averages around each run.
The issue-33 baseline: 131 s wall on a quiet 2-core machine (~2 s a point, ~1.5 s of it the
null rebuilt at every point).

    python benchmarks/bench_distributional.py            # the 64-point sweep (the figure)
    python benchmarks/bench_distributional.py --quick    # the gaussian law's 16 points
    python benchmarks/bench_distributional.py --smoke    # its 8 tilt points on a small pool (seconds)
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

NAME = "distributional"
BASELINE_WALL_S = 131.0
"""`goodhart sweep configs/sweep/distributional.yaml` before the statistics cache (quiet
2-core machine, load < 1)."""
SWEEP = B.REPO / "configs" / "sweep" / "distributional.yaml"


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def sweep_once(args: list[str], cache: Path, work: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="runs-", dir=work))
    cmd = [sys.executable, "-m", "goodhart.pipeline.cli", "sweep", str(SWEEP), *args]
    cmd += ["tracking.enabled=false", "--quiet", "--output", str(out)]
    env = {**os.environ, "GOODHART_CACHE": str(cache)}
    load0, cpu0, t0 = B.load_avg(), _children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if r.returncode != 0:
        raise RuntimeError(f"the sweep failed (exit {r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    points = sum(1 for _ in out.glob("*/points/*/result.json"))
    return {
        "command": " ".join(["goodhart", *cmd[3:]]),
        "points": points,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "load_before_after": [load0, B.load_avg()],
    }


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    only = opts.pick(
        ["--only", "reward.error=gaussian", "--branch", "0", "sampling.n=16384", "prompts.n_eval=2"],
        ["--only", "reward.error=gaussian"],
        [],
    )
    runs = {}
    with tempfile.TemporaryDirectory(prefix="gh-dist-") as d:
        work = Path(d)
        cache = work / "cache"  # nothing but what these sweeps put there: the statistics
        runs["cold"] = sweep_once(only, cache, work)
        runs["warm"] = sweep_once(only, cache, work)
        runs["cold, --jobs 1"] = sweep_once([*only, "--jobs", "1"], work / "cache-jobs1", work)
    B.say(f"\n== distributional sweep: {SWEEP.relative_to(B.REPO)} {' '.join(only)}".rstrip())
    for k, r in runs.items():
        per = r["wall_seconds"] / max(r["points"], 1)
        B.say(
            f"{k:>15}: {r['points']} points, wall {r['wall_seconds']:.1f} s ({per:.2f} s a point), "
            f"CPU {r['cpu_seconds']:.1f} s, load {r['load_before_after']}"
        )
    figures: dict = {"runs": runs, "baseline_wall_seconds": BASELINE_WALL_S}
    if opts.mode == "full":
        for k, r in runs.items():
            figures[f"speedup_{k.replace(', --jobs 1', '_jobs1')}"] = BASELINE_WALL_S / r["wall_seconds"]
        B.say(
            f"against {BASELINE_WALL_S:.0f} s before (quiet machine): "
            + ", ".join(f"{k} {BASELINE_WALL_S / r['wall_seconds']:.1f}x" for k, r in runs.items())
            + " (wall: compare on a quiet machine)"
        )
    return B.write_json(opts.out, NAME, opts, figures, started)


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
