"""Interrupts, kills and concurrent runners, on real `goodhart sweep` processes.

Points are distributional (no model) and made slow by a `sitecustomize` on PYTHONPATH that
wraps the tilt optimizer in a sleep (GOODHART_TEST_POINT_SLEEP seconds), in the parent and in
its spawned workers alike, so that a signal reliably lands while points are in flight. The
runner, the workers, the signals and the MLflow store are the real ones.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from goodhart.pipeline.config.load import configs_dir

GOODHART = [sys.executable, "-m", "goodhart.pipeline.cli"]
SITE = """
import os
if os.environ.get("GOODHART_TEST_POINT_SLEEP"):
    # Patch the tilt optimizer when (and only where) it is imported, so that helper processes
    # such as multiprocessing's resource tracker start as fast as ever.
    import importlib.abc, importlib.machinery, sys, time
    _NAME = "goodhart.pipeline.optimizers.tilt"

    class _Slow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != _NAME:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            real_exec = spec.loader.exec_module

            def exec_module(module):
                real_exec(module)
                real = module.run
                def run(ctx):
                    import multiprocessing
                    hold = os.environ.get("GOODHART_TEST_HOLD_DB")
                    if hold and multiprocessing.parent_process() is not None:
                        # A worker inside a write transaction of the store (as if the signal
                        # landed in MLflow's commit): it holds SQLite's write lock till it exits.
                        import sqlite3
                        con = sqlite3.connect(hold, timeout=60)
                        con.execute("BEGIN IMMEDIATE")
                        open(os.path.join(str(ctx.point_dir), "held"), "w").close()
                        # ... and then waits, in C, on its own lock (what MLflow's next write does)
                        sqlite3.connect(hold, timeout=120).execute("BEGIN IMMEDIATE")
                    time.sleep(float(os.environ["GOODHART_TEST_POINT_SLEEP"]))
                    return real(ctx)
                module.run = run

            spec.loader.exec_module = exec_module
            return spec

    import importlib.util
    sys.meta_path.insert(0, _Slow())
"""


def sweep_file(where: Path, n_points: int, name: str = "k") -> Path:
    spec = {
        "name": name,
        "base": str(configs_dir() / "base.yaml"),
        "set": {"reward": "distributional", "sampling.n": 64, "prompts.n_eval": 4, "eval.bootstrap": 20},
        "grid": {"algo.kl.coef": [round(0.1 * (i + 1), 2) for i in range(n_points)]},
    }
    p = where / f"{name}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def env_for(where: Path, sleep: float | None, marker: str) -> dict[str, str]:
    site = where / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITE)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(site),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        GOODHART_TEST_MARKER=marker,  # finds this test's processes in /proc afterwards
        MLFLOW_TRACKING_URI=f"sqlite:///{where / 'mlflow.db'}",
    )
    env.pop("GOODHART_TEST_POINT_SLEEP", None)
    if sleep:
        env["GOODHART_TEST_POINT_SLEEP"] = str(sleep)
    return env


def start(f: Path, where: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*GOODHART, "sweep", str(f), "--quiet", "--output", str(where / "out"), *args],
        cwd=where,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def marked_pids(marker: str) -> list[int]:
    """Live processes (not zombies) whose environment carries `marker`."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if f"GOODHART_TEST_MARKER={marker}".encode() not in (d / "environ").read_bytes():
                continue
            if (d / "stat").read_text().split(")")[-1].split()[0] == "Z":
                continue
        except OSError:
            continue
        out.append(int(d.name))
    return out


def wait_no_marked(marker: str, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = marked_pids(marker)
        if not left:
            return []
        time.sleep(0.2)
    return marked_pids(marker)


def wait_done_points(root: Path, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(root.glob("points/*/result.json"))) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} points finished within {timeout} s")


def wait_in_flight(root: Path, timeout: float) -> None:
    """Until a point has finished and another one is running (its running.json: a worker's
    child run is named in run.json only once the runner has logged the finished point)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = len(list(root.glob("points/*/result.json")))
        running = [p.parent for p in root.glob("points/*/running.json")]
        if done >= 1 and any(not (d / "result.json").exists() for d in running):
            time.sleep(0.3)
            return
        time.sleep(0.05)
    raise AssertionError(f"no point in flight within {timeout} s")


def runs(where: Path, name: str = "k"):
    from mlflow import MlflowClient

    c = MlflowClient(f"sqlite:///{where / 'mlflow.db'}")
    exp = c.get_experiment_by_name(name)
    rs = c.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in rs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in rs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def statuses(root: Path) -> dict[str, int]:
    from goodhart.pipeline.sweeps.record import point_status

    out: dict[str, int] = {}
    for e in json.loads((root / "points.json").read_text()):
        st = point_status(root, e["id"])
        out[st] = out.get(st, 0) + 1
    return out


@pytest.mark.parametrize(
    "jobs,sig",
    [
        (2, signal.SIGINT),
        pytest.param(2, signal.SIGTERM, marks=pytest.mark.slow),  # same path, another handler
        pytest.param(1, signal.SIGINT, marks=pytest.mark.slow),
    ],
)
def test_a_signal_stops_the_sweep_within_seconds_and_a_rerun_finishes_it(tmp_path, jobs, sig):
    marker = f"int-{os.getpid()}-{jobs}-{sig}"
    f = sweep_file(tmp_path, 12)
    root = tmp_path / "out" / "k"
    proc = start(f, tmp_path, env_for(tmp_path, 1.5, marker), "--jobs", str(jobs))
    wait_in_flight(root, timeout=120)
    t0 = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=60)
    stopped = time.monotonic() - t0
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert stopped < 20, f"took {stopped:.1f} s to stop"  # before: after the whole queue (minutes)
    assert "interrupted" in err and "Traceback" not in err, err
    assert wait_no_marked(marker, 5) == [], "worker processes outlived the sweep"
    st = statuses(root)
    assert st.get("done", 0) < 12 and "failed" not in st, st  # interrupted points are not failures
    assert st.get("interrupted", 0) >= 1, st  # the point(s) in flight say so, and rerun
    parents, children = runs(tmp_path)
    assert [p.info.status for p in parents] == ["KILLED"]
    assert all(c.info.status in ("FINISHED", "KILLED") for c in children)

    # A rerun finishes the rest, continuing interrupted points' own child runs.
    rerun = start(f, tmp_path, env_for(tmp_path, None, marker), "--jobs", str(jobs))
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert statuses(root) == {"done": 12}
    parents, children = runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 12 and {c.info.status for c in children} == {"FINISHED"}


def _kill_nine_then_rerun(tmp_path: Path, n_points: int, kills: int, jobs: int, seed: int) -> None:
    rng = random.Random(seed)
    marker = f"k9-{os.getpid()}-{seed}"
    f = sweep_file(tmp_path, n_points)
    root = tmp_path / "out" / "k"
    for _ in range(kills):
        proc = start(f, tmp_path, env_for(tmp_path, 0.6, marker), "--jobs", str(jobs))
        time.sleep(rng.uniform(4.0, 9.0))  # import time included: anywhere from start-up to mid-sweep
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()  # not communicate(): an orphan holding the pipes would hang it
        proc.stderr.close()
        # Workers notice their parent died (PR_SET_PDEATHSIG / watchdog) and stop.
        assert wait_no_marked(marker, 8) == [], "orphan workers after kill -9"
    rerun = start(f, tmp_path, env_for(tmp_path, None, marker), "--jobs", str(jobs))
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    df = pd.read_csv(root / "results.csv")
    assert len(df) == n_points and set(df["status"]) == {"done"}
    assert df["point_id"].is_unique
    parents, children = runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    ids = [c.data.tags["goodhart.point_id"] for c in children]
    assert len(ids) == len(set(ids)) == n_points, "a point got more than one child run"
    assert {c.info.status for c in children} == {"FINISHED"}
    for c in children:  # each child run is the one its point names
        assert json.loads((root / "points" / c.data.tags["goodhart.point_id"] / "run.json").read_text())["run_id"] == (
            c.info.run_id
        )


def test_kill_nine_twice_then_rerun_every_point_once(tmp_path):
    _kill_nine_then_rerun(tmp_path, n_points=8, kills=2, jobs=2, seed=11)


def _blocked_worker(db: str, point_dir: str) -> None:
    """A sweep worker mid-point that holds the store's write lock and then waits, in C, on it."""
    import sqlite3

    from goodhart.pipeline.sweeps import local

    local._worker_init(1)
    local._busy.update(task=True, dir=point_dir)
    sqlite3.connect(db).execute("BEGIN IMMEDIATE")
    Path(point_dir, "held").touch()
    sqlite3.connect(db, timeout=120).execute("BEGIN IMMEDIATE")


def _runner_that_dies(db: str, point_dir: str) -> None:
    import multiprocessing

    w = multiprocessing.get_context("fork").Process(target=_blocked_worker, args=(db, point_dir))
    w.start()
    Path(point_dir, "worker.pid").write_text(str(w.pid))
    deadline = time.monotonic() + 30
    while not Path(point_dir, "held").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os._exit(9)  # as kill -9: no clean-up, the worker is orphaned


def test_an_orphan_blocked_on_its_own_store_lock_leaves_within_seconds(tmp_path):
    """Fast variant of the kill -9 case below: the watchdog thread gets the orphan out although
    its main thread sits in a C call that no signal handler can interrupt."""
    import multiprocessing

    d = tmp_path / "points" / "p1"
    d.mkdir(parents=True)
    (d / "running.json").write_text("{}")
    mid = multiprocessing.get_context("fork").Process(target=_runner_that_dies, args=(str(tmp_path / "m.db"), str(d)))
    mid.start()
    mid.join(30)
    pid = int((d / "worker.pid").read_text())
    t0 = time.monotonic()

    def alive() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
        except OSError:
            return False

    while alive() and time.monotonic() - t0 < 20:
        time.sleep(0.1)
    assert not alive(), "orphan still alive 20 s after its runner died"
    assert time.monotonic() - t0 < 5.0
    assert (d / "interrupted.json").is_file() and not (d / "running.json").exists()


@pytest.mark.slow
def test_orphans_holding_the_store_lock_leave_at_once_and_the_rerun_does_not_wait(tmp_path):
    """kill -9 of `goodhart sweep --jobs 2` while a worker holds SQLite's write lock (mid-commit):
    the orphan leaves within seconds (no MLflow retry against its own lock), the rerun finishes
    every point once, without "database is locked"."""
    marker = f"orph-{os.getpid()}"
    f = sweep_file(tmp_path, 5)
    root = tmp_path / "out" / "k"
    env = env_for(tmp_path, 0.5, marker)
    env["GOODHART_TEST_HOLD_DB"] = str(tmp_path / "mlflow.db")
    proc = start(f, tmp_path, env, "--jobs", "2")
    deadline = time.monotonic() + 120
    while not list(root.glob("points/*/held")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(root.glob("points/*/held")), "no worker reached the point"
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    t0 = time.monotonic()
    left = wait_no_marked(marker, 20)
    assert left == [], [
        (
            Path(f"/proc/{p}/cmdline").read_bytes()[:200],
            Path(f"/proc/{p}/stack").read_text() if Path(f"/proc/{p}/stack").exists() else "",
        )
        for p in left
    ]
    assert time.monotonic() - t0 < 5.0, f"orphans took {time.monotonic() - t0:.1f} s to leave"
    held = [p.parent for p in root.glob("points/*/held")]
    assert all((d / "interrupted.json").is_file() and not (d / "running.json").exists() for d in held)
    t0 = time.monotonic()
    rerun = start(f, tmp_path, env_for(tmp_path, None, marker), "--jobs", "2")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and "locked" not in err, err
    assert statuses(root) == {"done": 5}
    parents, children = runs(tmp_path)
    ids = [c.data.tags["goodhart.point_id"] for c in children]
    assert len(ids) == len(set(ids)) == 5 and {c.info.status for c in children} == {"FINISHED"}


def test_two_runners_on_one_directory_and_one_new_store(tmp_path):
    """Both start at once on a store that does not exist yet: the store is created once, one
    runner holds the directory, the other says who holds it; every point runs once."""
    marker = f"cc-{os.getpid()}"
    f = sweep_file(tmp_path, 4)
    env = env_for(tmp_path, 0.5, marker)
    a, b = start(f, tmp_path, env), start(f, tmp_path, env)
    (_, ea), (_, eb) = a.communicate(timeout=300), b.communicate(timeout=300)
    codes = sorted([a.returncode, b.returncode])
    busy = ea if a.returncode == 2 else eb
    assert codes in ([0, 2], [0, 0]), (ea, eb)
    if codes == [0, 2]:
        assert "is in use by another goodhart run (pid" in busy and "Traceback" not in busy
    assert "Traceback" not in ea + eb
    parents, children = runs(tmp_path)
    assert len(parents) == 1 and len(children) == 4
    assert statuses(tmp_path / "out" / "k") == {"done": 4}


@pytest.mark.slow
def test_two_sweeps_create_one_new_store_together(tmp_path):
    """Two different sweeps, one new SQLite store: MLflow's schema creation runs once (locked)."""
    marker = f"st-{os.getpid()}"
    env = env_for(tmp_path, None, marker)
    fa, fb = sweep_file(tmp_path, 2, "a"), sweep_file(tmp_path, 2, "b")
    pa, pb = start(fa, tmp_path, env), start(fb, tmp_path, env)
    (_, ea), (_, eb) = pa.communicate(timeout=300), pb.communicate(timeout=300)
    assert pa.returncode == 0 and pb.returncode == 0, (ea, eb)
    for name in ("a", "b"):
        parents, children = runs(tmp_path, name)
        assert len(parents) == 1 and len(children) == 2


def test_a_signal_whose_exception_a_finalizer_swallowed_still_stops_the_sweep():
    # Ctrl-C landing while a finalizer runs (SQLAlchemy's weakref callbacks, in the parent logging
    # a worker's MLflow run) raises Interrupted inside it, and Python prints and drops it ("Exception
    # ignored in ..."); the sweep's loop then asks raise_if_interrupted each turn and stops anyway.
    import gc
    import weakref

    from goodhart.pipeline.sweeps.runstate import Interrupted, interrupts_raise, raise_if_interrupted

    class Thing:
        pass

    with interrupts_raise():
        raise_if_interrupted()  # nothing seen yet
        t = Thing()
        weakref.finalize(t, lambda: os.kill(os.getpid(), signal.SIGINT) or time.sleep(0.2))
        del t
        gc.collect()  # the finalizer ran; its Interrupted was swallowed
        with pytest.raises(Interrupted):
            raise_if_interrupted()
    with interrupts_raise():
        raise_if_interrupted()  # a new run starts clean
