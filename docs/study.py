"""The SmolLM2 study, one command (`make smollm2-study` runs this): two reward models, the sweep,
its report, and the docs block, with the wall time, CPU time and load of every step recorded.

    python docs/study.py                       # the study (configs/sweep/smollm2_study.yaml)
    python docs/study.py --small --no-docs     # the same path in a few minutes (smollm2_study_small.yaml)

Steps (each picks up where an interrupted run stopped: a finished reward model is reused, a
sweep runs only its missing points, so re-running the command after an interrupt resumes it):

1. `goodhart train-rm configs/rm/smollm2_study.yaml shard=0` and `shard=1`: the learned proxy and
   its held-out twin, on disjoint comparisons (the paths the sweep file names);
2. `goodhart sweep` of the study's sweep file;
3. `goodhart report` of its directory (verdicts, alarm, held-out estimate, figure);
4. unless --no-docs: the run stored as docs/runs/<name>/ (`docs/tables.py snapshot`, with the
   load seen and the wall time), the report's verdicts and the figure beside it, and every
   marked block of the docs redrawn (`docs/tables.py write`).

`runs/<name>/study.json` records each step of each attempt: wall seconds, the CPU seconds of its
processes (user + system; on a shared machine CPU seconds / cores is the better guess of a quiet
machine's wall time) and the load averages sampled every 15 s while it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = "configs/sweep/smollm2_study.yaml"
SMALL = "configs/sweep/smollm2_study_small.yaml"
RM = "configs/rm/smollm2_study.yaml"
SMALL_RM = [
    "n_pairs=32",
    "sampling.n=8",
    "sampling.max_new_tokens=12",
    "reserve=4",
    "heldout_prompts=4",
    "training.epochs=1",
]
"""The small variant's reward models: 8 prompts x 8 completions of 12 tokens (its sweep's sizes)."""


class LoadSampler(threading.Thread):
    """The 1-minute load average every `every` seconds until stopped."""

    def __init__(self, every: float = 15.0):
        super().__init__(daemon=True)
        self.every, self.seen, self._stop = every, [os.getloadavg()[0]], threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.every):
            self.seen.append(os.getloadavg()[0])

    def stop(self) -> list[float]:
        self._stop.set()
        self.seen.append(os.getloadavg()[0])
        return [round(x, 2) for x in self.seen]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def step(name: str, argv: list[str], log: list[dict]) -> None:
    """Run one step (its output streams through), record it, exit with its code if it failed."""
    print(f"== [{time.strftime('%H:%M:%S')}] study: {name}: {' '.join(argv)}", flush=True)
    loads, cpu0, t0 = LoadSampler(), children_cpu(), time.time()
    loads.start()
    proc = subprocess.Popen(argv, cwd=REPO)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (below): the step's record says so; rerun to resume
        proc.terminate()  # SIGTERM: a background job (`cmd &`) ignores SIGINT, the CLI stops on this
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        rc = 130
    log.append(
        {
            "step": name,
            "command": " ".join(argv),
            "rc": rc,
            "wall_s": round(time.time() - t0, 1),
            "cpu_s": round(children_cpu() - cpu0, 1),
            "load": loads.stop(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        }
    )
    if rc != 0:
        raise SystemExit(rc)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def rm_paths(sweep_file: Path) -> list[str]:
    """The held-out and optimized reward models' directories the sweep file names (shard order)."""
    import yaml

    text = yaml.safe_load(sweep_file.read_text())
    paths: list[str] = []

    def walk(v: object) -> None:
        if isinstance(v, dict):
            if v.get("type") == "hf" and isinstance(v.get("path"), str) and v["path"] not in paths:
                paths.append(v["path"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(text)
    return sorted(paths)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help=f"the small variant ({SMALL}; minutes)")
    ap.add_argument("--no-docs", action="store_true", help="stop after the report (store nothing in docs/)")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    sweep_file = SMALL if a.small else SWEEP
    exe = Path(sys.executable).parent / "goodhart"
    gh = [str(exe)] if exe.exists() else [sys.executable, "-m", "goodhart.pipeline.cli"]
    import yaml

    name = yaml.safe_load((REPO / sweep_file).read_text())["name"]
    sweep_dir = REPO / "runs" / name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    record = sweep_dir / "study.json"
    attempts = json.loads(record.read_text()) if record.is_file() else []
    log: list[dict] = []
    attempts.append({"sweep_file": sweep_file, "steps": log})
    try:
        for shard, out in enumerate(rm_paths(REPO / sweep_file)):
            extra = SMALL_RM if a.small else []
            step(f"reward model shard {shard}", [*gh, "train-rm", RM, f"shard={shard}", *extra, "--out", out], log)
        step("sweep", [*gh, "sweep", sweep_file], log)
        step("report", [*gh, "report", str(sweep_dir.relative_to(REPO)), "--no-mlflow"], log)
    finally:
        record.write_text(json.dumps(attempts, indent=1))
    if a.no_docs:
        return 0
    return store(sweep_dir, sweep_file, attempts)


def store(sweep_dir: Path, sweep_file: str, attempts: list[dict]) -> int:
    """docs/runs/<name>/: the run (tables.py snapshot), its report's verdicts and cost record; the
    figure as docs/img/<name>_gains_vs_kl.png; then every marked block redrawn."""
    sys.path.insert(0, str(REPO / "docs"))
    import tables

    steps = [s for att in attempts for s in att["steps"] if s["rc"] == 0]
    load = [x for s in steps for x in s["load"]]
    sweep_wall = sum(s["wall_s"] for s in steps if s["step"] == "sweep")
    out = tables.snapshot(sweep_dir, sweep_file, [], [min(load), max(load)], sweep_wall)
    shutil.copyfile(sweep_dir / "study.json", out / "study.json")
    place_blocks(REPO / "docs" / "results.md", sweep_dir.name)
    rep = sweep_dir / "report"
    for f in ("verdicts.csv", "report.md"):
        if (rep / f).is_file():
            shutil.copyfile(rep / f, out / f)
    if (rep / "gains_vs_kl.png").is_file():
        shutil.copyfile(rep / "gains_vs_kl.png", REPO / "docs" / "img" / f"{sweep_dir.name}_gains_vs_kl.png")
    for p in tables.write():
        print(f"rewrote {p.relative_to(REPO)}")
    return 0


ANCHOR = "<!-- study: {name} -->"
"""Where a study's blocks go in docs/results.md before its first run is stored."""


def blocks_for(name: str) -> str:
    """The marked blocks of a stored study: its tables, its report's held-out estimate and
    verdicts, the power of its unresolved points, its cost, and its figure."""

    def block(part: str) -> str:
        spec = name if part == "tables" else f"{name} part={part}"
        return f"<!-- results: {spec} -->\n<!-- /results -->\n"

    return (
        f"### Tables\n\n{block('tables')}\n### Held-out estimate and verdicts\n\n{block('report')}\n"
        f"### What it would take to resolve the unresolved points\n\n{block('power')}\n"
        f"### Cost, machine and load\n\n{block('cost')}\n"
        f"![Proxy and utility gain against KL, one column per proxy](img/{name}_gains_vs_kl.png)\n"
    )


def place_blocks(page: Path, name: str) -> bool:
    """Replace the study's anchor in `page` by its marked blocks (once: later runs only redraw them)."""
    text = page.read_text()
    anchor = ANCHOR.format(name=name)
    if f"<!-- results: {name} -->" in text or anchor not in text:
        return False
    page.write_text(text.replace(anchor, blocks_for(name).rstrip("\n")))
    return True


if __name__ == "__main__":
    sys.exit(main())
