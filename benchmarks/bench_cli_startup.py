"""What a CLI call costs before it does anything: wall and CPU seconds of verbs that need no
model, each in a fresh process, and whether it imported torch. The reference case imports
torch + transformers alone (what every call paid when a verb pulled them in before parsing).

    python benchmarks/bench_cli_startup.py [--quick | --smoke] [--out FILE]

Each case runs `reps` times interleaved with the others (A B C ... A B C ...); the figures are
medians. `tails` keeps its Student-t reference per sample size in $GOODHART_CACHE/stats/: its
first case reads it (made by the set-up's run), its "first of its size" case starts from an
empty cache every time. Nothing is asserted here (tests/test_cli_startup.py checks the imports
themselves).
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

SWEEP = """name: light
base: {base}
set: {{reward: distributional, sampling.n: 256, prompts.n_eval: 4, tracking.enabled: false, eval.bootstrap: 20}}
branches:
  - set: {{algo: bon}}
    grid: {{algo.n: [1, 4]}}
"""
PROBE = "import sys; from goodhart.pipeline.cli.main import main; rc = main(sys.argv[1:]); " + (
    "print('TORCH=' + str('torch' in sys.modules), 'SCIPY_STATS=' + str('scipy.stats' in sys.modules), "
    "file=sys.stderr); sys.exit(rc)"
)
CASES = {
    "--help": ["--help"],
    "config show": ["config", "show"],
    "config show (bad key)": ["config", "show", "nosuch.key=1"],
    "sweep (YAML error)": ["sweep", "bad.yaml"],
    "sweep --dry-run": ["sweep", "light.yaml", "--dry-run"],
    "status SWEEP_DIR": ["status", "runs/light"],
    "tails FILE (.npy, 2,000 values)": ["tails", "small.npy"],
    "tails FILE, first of its size (empty cache)": ["tails", "small.npy"],
    "report --no-mlflow": ["report", "runs/light", "--no-mlflow"],
}


def _once(argv: list[str], cwd: Path, cold: bool = False) -> tuple[float, float, bool | None, bool | None]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if cold:  # a cache of its own, empty
        env["GOODHART_CACHE"] = tempfile.mkdtemp(prefix="gh-cache-", dir=cwd)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    torch = stats = None
    for line in r.stderr.splitlines():
        if line.startswith("TORCH="):
            torch, stats = (w.endswith("True") for w in line.split())
    return wall, cpu, torch, stats


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    reps = opts.pick(1, 5, 9)
    work = Path(tempfile.mkdtemp(prefix="gh-startup-"))
    (work / "light.yaml").write_text(SWEEP.format(base=B.BASE_YAML))
    (work / "bad.yaml").write_text("a: [\n")
    import numpy as np

    np.save(work / "small.npy", np.random.default_rng(0).standard_t(3, 2000))
    subprocess.run(
        [sys.executable, "-m", "goodhart.pipeline.cli", "sweep", "light.yaml", "--quiet"], cwd=work, check=True
    )
    subprocess.run(  # the reference of a 2,000-value sample, kept as a user's first call keeps it
        [sys.executable, "-m", "goodhart.pipeline.cli", "tails", "small.npy"], cwd=work, check=True, capture_output=True
    )
    argvs = {k: [sys.executable, "-c", PROBE, *v] for k, v in CASES.items()}
    argvs["import torch + transformers (reference)"] = [sys.executable, "-c", "import torch, transformers"]
    samples: dict[str, list[tuple[float, float, bool | None, bool | None]]] = {k: [] for k in argvs}
    load = [B.load_avg()]
    for _ in range(reps):
        for k, argv in argvs.items():
            samples[k].append(_once(argv, work, cold="empty cache" in k))
        load.append(B.load_avg())
    rows = [
        {
            "case": k,
            "wall_s": B.median([s[0] for s in v]),
            "cpu_s": B.median([s[1] for s in v]),
            "imports_torch": v[0][2] if v[0][2] is not None else "-",
            "imports_scipy_stats": v[0][3] if v[0][3] is not None else "-",
        }
        for k, v in samples.items()
    ]
    B.say(f"CLI start-up, {reps} run(s) each, load averages {load[0]} -> {load[-1]}")
    B.say(B.table(rows, ["case", "wall_s", "cpu_s", "imports_torch", "imports_scipy_stats"]))
    return B.write_json(opts.out, "cli_startup", opts, {"reps": reps, "rows": rows, "load_avg_rounds": load}, started)


if __name__ == "__main__":
    run(B.parse_opts(None, "cli_startup", __doc__))
