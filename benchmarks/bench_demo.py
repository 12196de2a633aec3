"""The demo as `make demo` runs it (`goodhart sweep configs/sweep/demo.yaml`, resolve rounds
included), and what it ends with: wall time and the verdicts of its curves and of the sweep.

Two runs in fresh working directories (their own MLflow SQLite store), the built-in model linked
in from the user's cache (its one-time build, ~80 s on two quiet cores, is `goodhart prepare`'s):

    cold   an empty cache otherwise: the base pools are sampled and scored
    warm   the same cache again (pools, calibration samples, resolve rounds' blocks sampled):
           what a second `make demo` in a fresh directory costs

It prints both wall times and the demo's last lines -- each curve's verdict, the sweep's -- and,
with --write, stores the warm run as docs/runs/demo/ (`docs/tables.py snapshot`, with its wall time
and load) and redraws the docs' demo tables from it (the README's, docs/results.md's). Nothing here
asserts a time: the figure is printed with the load.

    python benchmarks/bench_demo.py [--write] [--out FILE]
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

NAME = "demo"


def sweep(work: Path, cache: Path, quiet: bool = True) -> tuple[float, str, list[float]]:
    """(wall seconds, the sweep's output, load before/after) of one `goodhart sweep` of the demo."""
    cmd = [sys.executable, "-m", "goodhart.pipeline.cli", "sweep", str(B.REPO / "configs/sweep/demo.yaml")]
    cmd += ["--output", str(work / "runs")] + (["--quiet"] if quiet else [])
    env = {**os.environ, "GOODHART_CACHE": str(cache), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("MLFLOW_TRACKING_URI", None)
    load0 = B.load_avg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the demo sweep failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    return wall, proc.stdout, [load0, B.load_avg()]


def verdict_lines(log: str) -> list[str]:
    """The demo's last lines: each curve's verdict and the sweep's."""
    tail = log[log.rfind("verdicts (rule") :]
    return [ln.rstrip() for ln in tail.splitlines()[1:] if ln.startswith("  ")]


def store(sweep_dir: Path, wall: float, load: list[float]) -> None:
    """The run as docs/runs/demo/ and every docs block drawn from it redrawn (docs/tables.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("doc_tables", B.REPO / "docs" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    sys.modules["doc_tables"] = tables  # its dataclass looks its module up
    spec.loader.exec_module(tables)
    tables.snapshot(sweep_dir, "configs/sweep/demo.yaml", [], load, wall)
    for page in tables.write():
        B.say(f"redrew {page.relative_to(B.REPO)} from docs/runs/demo/")


def run(opts: B.Opts, write: bool = False) -> dict:
    from goodhart.pipeline.io import cache_dir

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cache = root / "cache"
        cache.mkdir()
        (cache / "models").symlink_to(cache_dir() / "models", target_is_directory=True)
        runs = {}
        for what in ("cold", "warm"):
            work = root / what
            work.mkdir()
            runs[what] = sweep(work, cache)
        if write:
            store(root / "warm" / "runs" / "demo", runs["warm"][0], runs["warm"][2])
    wall_cold, _, load_cold = runs["cold"]
    wall_warm, log, load_warm = runs["warm"]
    lines = verdict_lines(log)
    B.say("\n== make demo (configs/sweep/demo.yaml), model build excluded")
    B.say(f"cold (pools sampled): {wall_cold:.0f} s, load {load_cold}")
    B.say(f"warm (pools cached):  {wall_warm:.0f} s, load {load_warm}")
    for ln in lines:
        B.say(ln)
    figures = {"wall_seconds_cold": wall_cold, "wall_seconds_warm": wall_warm, "verdicts": lines}
    return B.write_json(opts.out, NAME, opts, figures, started)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--write"]
    run(B.parse_opts(args, NAME, __doc__), write="--write" in sys.argv[1:])
