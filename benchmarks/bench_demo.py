"""The demo as `make demo` runs it (`goodhart sweep configs/sweep/demo.yaml`, resolve rounds
included), and what it ends with: wall time and the verdicts of its curves and of the sweep.

Two runs in fresh working directories (their own MLflow SQLite store), the built-in model linked
in from the user's cache (its one-time build, ~80 s on two quiet cores, is `goodhart prepare`'s):

    cold   an empty cache otherwise: the base pools are sampled and scored
    warm   the same cache again (pools, calibration samples, resolve rounds' blocks sampled):
           what a second `make demo` in a fresh directory costs

It prints both wall times and the demo's last lines -- each curve's verdict, the sweep's -- and,
with --write, regenerates the README's demo table (between its <!-- demo-table --> markers) from
the warm run's own tables. Nothing here asserts a time: the figure is printed with the load.

    python benchmarks/bench_demo.py [--write] [--out FILE]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

NAME = "demo"
README = B.REPO / "README.md"
TABLE_CURVES = (
    "utility sentiment | proxy sentiment + pareto(alpha=1.5) x0.3 ",
    "utility gaussian x1 | proxy gaussian x1 + pareto(alpha=0.5) x0.1 ",
)
"""The README shows the two pareto curves' tables (their last looks): the text one and the synthetic one."""


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


def curve_table(log: str, head: str = TABLE_CURVES[0]) -> str:
    """The table of the curve whose title starts with `head` (the last one printed)."""
    blocks = re.split(r"\n(?=utility )", log)
    title = re.compile(re.escape(head.strip()) + r"\s+\(base utility")
    found = [b for b in blocks if title.match(b)]
    if not found:
        raise ValueError(f"no table for {head!r} in the demo's output")
    lines = found[-1].strip("\n").splitlines()
    out = []
    for ln in lines:
        if not ln.strip():
            break
        out.append(ln.rstrip())
    return "\n".join(out)


def write_readme(table: str) -> None:
    text = README.read_text()
    new = re.sub(
        r"<!-- demo-table -->\n.*?<!-- /demo-table -->",
        lambda m: f"<!-- demo-table -->\n```text\n{table}\n```\n<!-- /demo-table -->",
        text,
        flags=re.S,
    )
    README.write_text(new)


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
    wall_cold, _, load_cold = runs["cold"]
    wall_warm, log, load_warm = runs["warm"]
    lines = verdict_lines(log)
    B.say("\n== make demo (configs/sweep/demo.yaml), model build excluded")
    B.say(f"cold (pools sampled): {wall_cold:.0f} s, load {load_cold}")
    B.say(f"warm (pools cached):  {wall_warm:.0f} s, load {load_warm}")
    for ln in lines:
        B.say(ln)
    figures = {"wall_seconds_cold": wall_cold, "wall_seconds_warm": wall_warm, "verdicts": lines}
    if write:
        write_readme("\n\n".join(curve_table(log, h) for h in TABLE_CURVES))
        B.say("README.md demo tables rewritten from the warm run (the two pareto curves)")
    return B.write_json(opts.out, NAME, opts, figures, started)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--write"]
    run(B.parse_opts(args, NAME, __doc__), write="--write" in sys.argv[1:])
