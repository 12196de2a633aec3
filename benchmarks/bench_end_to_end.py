"""End to end: the demo sweep (`goodhart sweep configs/sweep/demo.yaml`) as a user runs it, in
a fresh process: wall time and peak RSS.

It runs in an empty working directory (its own MLflow SQLite store) with an empty cache, except
that the built-in model is linked in from the user's cache: its one-time build (~80 s on two
quiet cores) is not what a sweep costs, and `goodhart prepare` reports it separately. --quick
runs benchmarks/demo_quick.yaml (the same kinds of point, 18 of them, smaller pool); --smoke a
4-point tilt/best-of-n sweep on the small test model with MLflow off.

Peak RSS is the sweep process's own high-water mark (VmHWM, polled from /proc); points run in
that process (--jobs 1). The sweep runs twice: as a user runs it (MLflow on, a fresh SQLite
store) and with `tracking.enabled=false`, so the difference is what tracking costs.

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


class HighWater:
    """The peak RSS of a child process: its VmHWM in /proc, read every 50 ms until it exits.
    (getrusage's ru_maxrss would not do: a child started by fork/vfork + exec inherits the
    parent's high-water mark, here the benchmark process's own.)"""

    def __init__(self, pid: int):
        import threading

        self.path, self.peak_kib = Path(f"/proc/{pid}/status"), 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()

    def _read(self) -> None:
        try:
            for line in self.path.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._read()
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


def sweep_once(opts: B.Opts, model_dir: Path, tracking: bool) -> dict:
    """One `goodhart sweep` in a fresh process, empty working directory and cache."""
    from goodhart.pipeline.io import cache_dir

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        cache = work / "cache"
        cache.mkdir()
        overrides = [f"model.device={opts.device}"] + ([] if tracking else ["tracking.enabled=false"])
        if opts.mode == "smoke":
            sweep_file = work / "demo_smoke.yaml"
            sweep_file.write_text(SMOKE.format(base=B.BASE_YAML))
            overrides += [f"model.path={model_dir}"]
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
        hwm = HighWater(proc.pid)
        log = proc.stdout.read()  # type: ignore[union-attr]
        rc = proc.wait()
        wall = time.perf_counter() - t0
        hwm.stop()
        if rc != 0:
            raise RuntimeError(f"the demo sweep failed (exit {rc}):\n{log[-3000:]}")
        points = sum(1 for _ in (work / "runs").glob("*/points/*/result.json"))
    return {
        "sweep_file": str(sweep_file.relative_to(B.REPO)) if sweep_file.is_relative_to(B.REPO) else sweep_file.name,
        "points": points,
        "mlflow": tracking,
        "wall_seconds": wall,
        "peak_rss_mib": hwm.peak_kib / 1024,
        "load_before_after": [load0, B.load_avg()],
        "command": " ".join(["goodhart", *cmd[3:]]),
    }


def run(opts: B.Opts) -> dict:
    """The sweep as a user runs it (MLflow on), then without MLflow (what tracking costs).
    --smoke runs only the second."""
    started = time.perf_counter()
    model_dir = B.bench_model_dir(opts)  # built (once) before the clock starts
    runs = [sweep_once(opts, model_dir, tracking) for tracking in ([False] if opts.mode == "smoke" else [True, False])]
    main = runs[0]
    figures = {
        "sweep_file": main["sweep_file"],
        "points": main["points"],
        "wall_seconds_sweep": main["wall_seconds"],
        "peak_rss_mib": main["peak_rss_mib"],
        "mlflow": main["mlflow"],
        "model_build_included": False,
        "runs": runs,
    }
    B.say(
        f"\n== end to end: {main['sweep_file']} ({main['points']} points), device {opts.device}, model build excluded"
    )
    for r in runs:
        B.say(
            f"MLflow {'on ' if r['mlflow'] else 'off'}: wall {r['wall_seconds']:.1f}s, peak RSS {r['peak_rss_mib']:.0f} MiB, "
            f"load {r['load_before_after']}"
        )
    return B.write_json(opts.out, NAME, opts, figures, started)


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
