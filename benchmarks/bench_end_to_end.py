"""End to end: the demo sweep (`goodhart sweep configs/sweep/demo.yaml`) as a user runs it, in
a fresh process: wall time and peak RSS.

It runs in an empty working directory (its own MLflow SQLite store) with an empty cache, except
that the built-in model is linked in from the user's cache: its one-time build (~80 s on two
quiet cores) is not what a sweep costs, and `goodhart prepare` reports it separately. --quick
runs benchmarks/demo_quick.yaml (the same kinds of point, 18 of them, smaller pool); --smoke a
4-point tilt/best-of-n sweep on the small test model with MLflow off.

Peak RSS is the sweep process's own maximum resident set (getrusage via wait4); points run in
that process (--jobs 1).

    python benchmarks/bench_end_to_end.py [--quick|--smoke] [--device cuda]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

NAME = "end_to_end"

SMOKE = """name: demo_smoke
base: {base}
set: {{prompts.n_eval: 2, sampling.n: 8, eval.bootstrap: 100}}
branches:
  - set: {{algo: tilt}}
    grid: {{reward: [gaussian], algo.kl.coef: [1.0, 0.1]}}
  - set: {{algo: bon}}
    grid: {{reward: [gaussian], algo.n: [1, 8]}}
"""


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    from goodhart.pipeline.io import cache_dir

    model_dir = B.bench_model_dir(opts)  # built (once) before the clock starts
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        cache = work / "cache"
        cache.mkdir()
        overrides = [f"model.device={opts.device}"]
        if opts.mode == "smoke":
            sweep_file = work / "demo_smoke.yaml"
            sweep_file.write_text(SMOKE.format(base=B.BASE_YAML))
            overrides += [f"model.path={model_dir}", "tracking.enabled=false"]
        else:
            sweep_file = B.REPO / ("benchmarks/demo_quick.yaml" if opts.mode == "quick" else "configs/sweep/demo.yaml")
            (cache / "models").symlink_to(cache_dir() / "models", target_is_directory=True)
        cmd = [sys.executable, "-m", "goodhart.pipeline.cli", "sweep", str(sweep_file), *overrides]
        cmd += ["--quiet", "--output", str(work / "runs")]
        env = {**os.environ, "GOODHART_CACHE": str(cache)}
        env.pop("MLFLOW_TRACKING_URI", None)
        load0 = B.load_avg()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log = proc.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"the demo sweep failed (exit {proc.returncode}):\n{log[-3000:]}")
        points = sum(1 for _ in (work / "runs").glob("*/points/*/result.json"))
    peak_mib = usage.ru_maxrss / 1024  # Linux: KiB
    figures = {
        "sweep_file": str(sweep_file.relative_to(B.REPO)) if sweep_file.is_relative_to(B.REPO) else sweep_file.name,
        "points": points,
        "wall_seconds_sweep": wall,
        "peak_rss_mib": peak_mib,
        "model_build_included": False,
        "load_before_after": [load0, B.load_avg()],
        "command": " ".join(["goodhart", *cmd[3:]]),
    }
    B.say(f"\n== end to end: {figures['sweep_file']} ({points} points), device {opts.device}")
    B.say(f"wall {wall:.1f}s, peak RSS {peak_mib:.0f} MiB (model build excluded), load {figures['load_before_after']}")
    return B.write_json(opts.out, NAME, opts, figures, started)


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
