"""The SmolLM2 study, one command (`make smollm2-study` runs this): two reward models, the sweep,
its report, and the docs block, with the wall time, CPU time and load of every step recorded.

    python docs/study.py                       # the study (configs/sweep/smollm2_study.yaml)
    python docs/study.py --small --no-docs     # the same path in a few minutes (smollm2_study_small.yaml)

Steps (each picks up where an interrupted run stopped: a finished reward model is reused, a
sweep runs only its missing points, so re-running the command after an interrupt resumes it):

1. side by side, one thread each (their logs in runs/<name>/logs/): `goodhart train-rm
   configs/rm/smollm2_study.yaml shard=0` and `shard=1`, the learned proxy and its held-out twin on
   disjoint comparisons (the paths the sweep file names); and the sweep's base pool, sampled into
   the pool cache (`--sample-pool`);
2. `goodhart sweep --jobs 3` of the study's sweep file (its PPO runs side by side);
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
STOP_WAIT = 60.0
"""Seconds an interrupted study waits for its steps to stop on SIGTERM before it kills them."""


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


def steps(named: list[tuple[str, list[str]]], log: list[dict], logs: Path, threads: int | None = None) -> None:
    """Run the steps side by side, record each (wall, its own CPU seconds from wait4, the load),
    and exit with the first failing code once all have stopped. A lone step streams its output;
    steps side by side write `logs`/<step>.log and get `threads` threads each
    ($GOODHART_THREADS), so they share the cores instead of each taking all of them."""
    procs: dict[int, tuple[str, list[str], subprocess.Popen, LoadSampler, float, object]] = {}
    env = dict(os.environ)
    if len(named) > 1 and threads:
        env["GOODHART_THREADS"] = str(threads)
    for name, argv in named:
        out = None
        if len(named) > 1:
            logs.mkdir(parents=True, exist_ok=True)
            out = open(logs / f"{name.replace(' ', '_')}.log", "ab")
            where = f" (log: {os.path.relpath(out.name, REPO)})"
        else:
            where = ""
        print(f"== [{time.strftime('%H:%M:%S')}] study: {name}: {' '.join(argv)}{where}", flush=True)
        loads = LoadSampler()
        loads.start()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
        procs[proc.pid] = (name, argv, proc, loads, time.time(), out)
    rcs: list[int] = []
    try:
        while procs:
            pid, status, usage = os.wait4(-1, 0)  # the study's only children are its steps
            if pid not in procs:
                continue
            name, argv, proc, loads, t0, out = procs.pop(pid)
            proc.returncode = rc = os.waitstatus_to_exitcode(status)
            rcs.append(rc)
            _record(log, name, argv, rc, t0, usage.ru_utime + usage.ru_stime, loads, out, len(named) > 1)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (below): the steps' records say so; rerun to resume
        for *_, proc, _loads, _t0, _out in procs.values():
            proc.terminate()  # SIGTERM: a background job (`cmd &`) ignores SIGINT, the CLI stops on this
        deadline = time.time() + STOP_WAIT  # then killed: a step that ignores SIGTERM must not hang the study
        for name, argv, proc, loads, t0, out in procs.values():
            cpu = 0.0
            try:
                while (got := os.wait4(proc.pid, os.WNOHANG))[0] == 0 and time.time() < deadline:
                    time.sleep(0.2)
                if got[0] == 0:
                    proc.kill()
                    got = os.wait4(proc.pid, 0)
                cpu = got[2].ru_utime + got[2].ru_stime
            except ChildProcessError:
                pass
            _record(log, name, argv, 130, t0, cpu, loads, out, len(named) > 1)
        raise SystemExit(130) from None
    bad = [rc for rc in rcs if rc != 0]
    if bad:
        raise SystemExit(bad[0])


def _record(
    log: list[dict], name: str, argv: list[str], rc: int, t0: float, cpu: float, loads, out, side_by_side: bool
) -> None:
    if out is not None:
        out.close()
    log.append(
        {
            "step": name,
            "command": " ".join(argv),
            "rc": rc,
            "wall_s": round(time.time() - t0, 1),
            "cpu_s": round(cpu, 1),
            "load": loads.stop(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
            "side_by_side": side_by_side,
        }
    )
    print(f"== [{time.strftime('%H:%M:%S')}] study: {name}: {'done' if rc == 0 else f'exit {rc}'}", flush=True)


def sample_pool(sweep_file: Path) -> int:
    """The 'base pool' step: sample (and score with a synthetic proxy) the pool the sweep's tilt and
    best-of-n points share, into the pool cache the sweep reads. Its completions are keyed by
    model, prompts, sampling and seed only, so the sweep scores them with every proxy without
    sampling again; the learned proxies' models need not exist yet."""
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.base.threads import choose_threads, pin_threads
    from goodhart.pipeline.config.schema import HFReward
    from goodhart.pipeline.sweeps.spec import expand, load_sweep

    pin_threads(choose_threads(1))
    sweep, base = load_sweep(sweep_file)
    cfg = next(
        p.cfg
        for p in expand(sweep, base)
        if p.cfg.algo.kind in ("tilt", "bon") and not isinstance(p.cfg.reward, HFReward)
    )
    PointContext(cfg, None).pool()
    return 0


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
    ap.add_argument("--sample-pool", metavar="SWEEP", help=argparse.SUPPRESS)  # the 'base pool' step
    a = ap.parse_args(argv)
    if a.sample_pool:
        return sample_pool(REPO / a.sample_pool)
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
    attempt = {"sweep_file": sweep_file, "steps": log, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    attempts.append(attempt)
    t0 = time.time()
    try:
        # The reward models' data and the sweep's pool are independent samplings of SmolLM2: they
        # run side by side, one thread each (three single-threaded samplers on 2 cores keep both
        # busy; one sampler on two threads runs ~1.5x, not 2x, faster than on one).
        extra = SMALL_RM if a.small else []
        prepare = [
            (f"reward model shard {shard}", [*gh, "train-rm", RM, f"shard={shard}", *extra, "--out", out])
            for shard, out in enumerate(rm_paths(REPO / sweep_file))
        ]
        prepare.append(("base pool", [sys.executable, str(Path(__file__).resolve()), "--sample-pool", sweep_file]))
        from goodhart.pipeline.base.threads import usable_cores

        steps(prepare, log, sweep_dir / "logs", threads=max(1, usable_cores() // len(prepare)))
        # three workers, one thread each: the PPO runs (the longest points) side by side, the rest beside them
        steps([("sweep", [*gh, "sweep", sweep_file, "--jobs", "3"])], log, sweep_dir / "logs")
        steps([("report", [*gh, "report", str(sweep_dir.relative_to(REPO)), "--no-mlflow"])], log, sweep_dir / "logs")
    finally:
        attempt["wall_s"] = round(time.time() - t0, 1)  # steps side by side overlap: this is the attempt's wall
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
