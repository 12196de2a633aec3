"""End to end: the demo sweep (`goodhart sweep configs/sweep/demo.yaml`) as a user runs it, in
a fresh process: wall time and peak RSS.

It runs in an empty working directory (its own MLflow SQLite store) with an empty cache, except
that the built-in model is linked in from the user's cache: its one-time build (~80 s on two
quiet cores) is not what a sweep costs, and `goodhart prepare` reports it separately. --quick
runs benchmarks/demo_quick.yaml (the same kinds of point, 18 of them, smaller pool); --smoke a
4-point tilt/best-of-n sweep on the small test model with MLflow off.

Peak RSS is the sweep process's own high-water mark (VmHWM, polled from /proc); points run in
that process (--jobs 1). The sweep runs twice: as a user runs it (MLflow on, a fresh SQLite
store) and with `tracking.enabled=false`, so the difference is what tracking costs: wall and
CPU seconds (user + sys of the sweep process; the CPU figure does not carry a busy machine's
load). GOODHART_BENCH_ROUNDS=N repeats the pair N times, order alternating, and gives medians.
The machine's empty MLflow store (the template every new SQLite store is copied from, built
once per machine and MLflow version by `goodhart prepare`, like the model) is linked in from the
user's cache and built before the clock, as the model is; GOODHART_BENCH_COLD_STORE=1 leaves it
out, so the MLflow run pays its one-time build (a machine's first sweep without `prepare`).

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
WARM_STORE = os.environ.get("GOODHART_BENCH_COLD_STORE") != "1"
"""Link the user's MLflow store template (<cache>/mlflow-store) in: every sweep after `goodhart
prepare` or the machine's first (GOODHART_BENCH_COLD_STORE=1: the first, which builds it)."""

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


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


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
        if tracking and WARM_STORE:  # the machine's empty-store template, as every sweep after its first finds it
            (cache_dir() / "mlflow-store").mkdir(parents=True, exist_ok=True)
            (cache / "mlflow-store").symlink_to(cache_dir() / "mlflow-store", target_is_directory=True)
        cmd = [sys.executable, "-m", "goodhart.pipeline.cli", "sweep", str(sweep_file), *overrides]
        cmd += ["--quiet", "--output", str(work / "runs")]
        env = {**os.environ, "GOODHART_CACHE": str(cache)}
        env.pop("MLFLOW_TRACKING_URI", None)
        load0 = B.load_avg()
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        hwm = HighWater(proc.pid)
        log = proc.stdout.read()  # type: ignore[union-attr]
        rc = proc.wait()
        wall = time.perf_counter() - t0
        cpu = _children_cpu() - cpu0  # the sweep's own user + sys (and its workers'), whatever the load
        hwm.stop()
        if rc != 0:
            raise RuntimeError(f"the demo sweep failed (exit {rc}):\n{log[-3000:]}")
        points = sum(1 for _ in (work / "runs").glob("*/points/*/result.json"))
    return {
        "sweep_file": str(sweep_file.relative_to(B.REPO)) if sweep_file.is_relative_to(B.REPO) else sweep_file.name,
        "points": points,
        "mlflow": tracking,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_mib": hwm.peak_kib / 1024,
        "load_before_after": [load0, B.load_avg()],
        "command": " ".join(["goodhart", *cmd[3:]]),
    }


def run(opts: B.Opts) -> dict:
    """The sweep as a user runs it (MLflow on), then without MLflow (what tracking costs).
    --smoke runs only the second. $GOODHART_BENCH_ROUNDS (default 1) repeats the pair, the order
    alternating (on, off; off, on; ...), and the overhead is given from the medians."""
    import statistics

    started = time.perf_counter()
    model_dir = B.bench_model_dir(opts)  # built (once) before the clock starts
    if WARM_STORE and opts.mode != "smoke":
        from goodhart.pipeline.sweeps.sqlite_store import store_template

        store_template()  # the machine's empty MLflow store: built (once) before the clock, as the model
    rounds = max(1, int(os.environ.get("GOODHART_BENCH_ROUNDS", "1")))
    order = (
        [[False]] if opts.mode == "smoke" else [[True, False] if i % 2 == 0 else [False, True] for i in range(rounds)]
    )
    runs = [sweep_once(opts, model_dir, tracking) for pair in order for tracking in pair]
    runs.sort(key=lambda r: not r["mlflow"])  # (stable) MLflow-on runs first: runs[0] is as a user runs it
    main = runs[0]
    figures = {
        "sweep_file": main["sweep_file"],
        "points": main["points"],
        "wall_seconds_sweep": main["wall_seconds"],
        "peak_rss_mib": main["peak_rss_mib"],
        "mlflow": main["mlflow"],
        "model_build_included": False,
        "rounds": len(order),
        "store_template_cached": WARM_STORE,
        "runs": runs,
    }
    B.say(
        f"\n== end to end: {main['sweep_file']} ({main['points']} points), device {opts.device}, model build excluded, "
        + ("empty MLflow store built before the clock" if WARM_STORE else "the MLflow run builds the empty store")
    )
    for r in runs:
        B.say(
            f"MLflow {'on ' if r['mlflow'] else 'off'}: wall {r['wall_seconds']:.1f}s, CPU {r['cpu_seconds']:.1f}s, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB, load {r['load_before_after']}"
        )
    on = [r for r in runs if r["mlflow"]]
    off = [r for r in runs if not r["mlflow"]]
    if on and off:
        for what in ("wall", "cpu"):
            a = statistics.median(r[f"{what}_seconds"] for r in on)
            b = statistics.median(r[f"{what}_seconds"] for r in off)
            figures[f"mlflow_overhead_{what}"] = a / b - 1
            B.say(
                f"MLflow on vs off, median {what} of {len(on)} + {len(off)}: {a:.1f} vs {b:.1f} s ({a / b - 1:+.0%})"
                + (" (wall carries the machine's load)" if what == "wall" else "")
            )
    return B.write_json(opts.out, NAME, opts, figures, started)


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
