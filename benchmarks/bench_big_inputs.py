"""Big inputs that must answer in reasonable time: `goodhart analyze` of a per-sample file of R
rows (10 points, the base among them, x P prompts x S samples each), and `goodhart sweep
--dry-run` of a grid of K points (every point validated, nothing run). Each case is one fresh
process; wall and CPU seconds of the whole command, start-up included.

    python benchmarks/bench_big_inputs.py [--quick | --smoke] [--out FILE]

sizes: smoke 10^4 rows / 100 points; quick 10^5 rows / 1,000 points; full 10^6 rows and
10,000 / 100,000 points (GOODHART_MAX_POINTS raised for the last). Nothing is asserted here
(tests/test_fuzz_inputs.py checks that these inputs are read at all).
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


def samples_file(path: Path, prompts: int, per_prompt: int, points: int = 10) -> int:
    """A samples file in docs/integrations.md's schema: utility N(0, 1), proxy = utility + t(3)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frames = []
    for j, p in enumerate(["base", *(str(100 * i) for i in range(points - 1))]):
        u = rng.normal(size=prompts * per_prompt)
        frames.append(
            pd.DataFrame(
                {
                    "point": p,
                    "prompt": np.repeat([f"p{i}" for i in range(prompts)], per_prompt),
                    "proxy": u + rng.standard_t(3, size=u.size) + 0.01 * j,
                    "utility": u,
                    "kl": 0.0 if p == "base" else 0.1 * j,
                }
            )
        )
    df = pd.concat(frames)
    df.to_csv(path, index=False)
    return len(df)


def sweep_file(path: Path, points: int) -> None:
    coefs = ", ".join(str(i + 1) for i in range(points // 10))
    path.write_text(
        f"name: big\nbase: {B.BASE_YAML}\n"
        "set: {reward: distributional, sampling.n: 64, algo: tilt, tracking.enabled: false}\n"
        f"grid: {{algo.kl.coef: [{coefs}], seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}}\n"
    )


def _once(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), r.returncode


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    goodhart = [sys.executable, "-m", "goodhart.pipeline.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for prompts, per_prompt in opts.pick([(10, 100)], [(100, 100)], [(1000, 100)]):
            n = samples_file(work / "s.csv", prompts, per_prompt)
            wall, cpu, rc = _once([*goodhart, "analyze", "s.csv", "--out", "a"], work, {})
            rows.append({"case": f"analyze {n:,} rows", "wall_s": wall, "cpu_s": cpu, "exit": rc, "load": B.load_avg()})
        for k in opts.pick([100], [1000], [10_000, 100_000]):
            sweep_file(work / "big.yaml", k)
            env = {"GOODHART_MAX_POINTS": str(max(k, 10_000))}
            wall, cpu, rc = _once([*goodhart, "sweep", "big.yaml", "--dry-run"], work, env)
            rows.append(
                {"case": f"dry run {k:,} points", "wall_s": wall, "cpu_s": cpu, "exit": rc, "load": B.load_avg()}
            )
    B.say("big inputs, one fresh process each (start-up included)")
    B.say(B.table(rows, ["case", "wall_s", "cpu_s", "exit", "load"]))
    return B.write_json(opts.out, "big_inputs", opts, {"rows": rows}, started)


if __name__ == "__main__":
    run(B.parse_opts(None, "big_inputs", __doc__))
