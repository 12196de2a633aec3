"""Run states that survive interrupts, kills and reruns.

- Interrupts: Ctrl-C (SIGINT) and SIGTERM raise `Interrupted` (a KeyboardInterrupt) in the main
  thread, except inside `deferred()`, which holds the signal until a record (a child run and the
  file that names it) is complete.
- Child runs: a point's MLflow run id is written to <point dir>/run.json as soon as the run
  exists; a rerun of the point continues that run (one step history, one run per point) instead
  of opening another.
- Reconciliation: a rerun closes, as KILLED, every child run of its parent that a dead invocation
  left RUNNING and that no point directory claims; the claimed ones are continued when their
  point runs again.
- Workers: a local worker process dies with its parent (PR_SET_PDEATHSIG on Linux, and a
  getppid watchdog everywhere), so kill -9 of `goodhart sweep` leaves no orphan computing; an
  orphan leaves at once, without an MLflow call (sweeps/local.py leave_orphaned).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from goodhart.pipeline.io import atomic_write_json, read_json

RUN_FILE = "run.json"  # {uri, parent_id, run_id}: the point's MLflow child run


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: stop now; the point in flight is recorded as interrupted, not failed."""


# ---------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------
_state: dict[str, Any] = {"depth": 0, "pending": None, "seen": None}


def on_signal(signum: int, frame: Any) -> None:
    """The handler: raise Interrupted now, or, inside `deferred()`, when the block ends. The signal
    is also remembered (``raise_if_interrupted``): raised inside a finalizer or a weakref callback
    (a garbage collection in SQLAlchemy, say), the exception is printed and dropped by Python."""
    _state["seen"] = signum
    if _state["depth"] > 0:
        _state["pending"] = signum
        return
    raise Interrupted(signal.Signals(signum).name)


def raise_if_interrupted() -> None:
    """Raise Interrupted if a signal arrived under interrupts_raise whose exception was lost (see
    on_signal); loops that outlive a signal (a sweep's wait on its workers) call it each turn."""
    if _state["seen"] is not None:
        raise Interrupted(signal.Signals(_state["seen"]).name)


@contextlib.contextmanager
def interrupts_raise(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within: these signals raise Interrupted (SIGTERM otherwise kills without a word)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, on_signal) for s in signals}
    seen, _state["seen"] = _state["seen"], None
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _state["seen"] = seen


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM (as handled by interrupts_raise) until the block is done."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            raise Interrupted(signal.Signals(signum).name)


# ---------------------------------------------------------------------------------------------
# Worker processes
# ---------------------------------------------------------------------------------------------
def die_with_parent(on_orphan: Callable[[], None] | None = None) -> None:
    """In a worker: get SIGTERM when the parent process dies (kill -9 included). The watchdog
    thread calls `on_orphan` instead when given: a signal handler runs only when the main thread
    next runs Python, which a C call (SQLite waiting on a lock this very process holds) can put
    off for minutes; a thread runs meanwhile."""
    import multiprocessing

    # The pid that started us (not getppid(): the parent may already be gone, and we adopted by init,
    # while this worker was still importing).
    origin = multiprocessing.parent_process()
    parent = origin.pid if origin is not None and origin.pid else os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)

    def watch() -> None:  # belt and braces: other systems, or a parent thread that exits
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                if on_orphan is not None:
                    time.sleep(1.0)  # the main thread's handler first, if it can run
                    on_orphan()
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="goodhart-parent-watchdog", daemon=True).start()


# ---------------------------------------------------------------------------------------------
# Child runs
# ---------------------------------------------------------------------------------------------
def recorded_run(point_dir: Path, uri: str, parent_id: str | None) -> str | None:
    """The child run id run.json names for this store and parent (None if none)."""
    p = point_dir / RUN_FILE
    try:
        rec = read_json(p)
    except (OSError, ValueError):
        return None
    if rec.get("uri") == uri and rec.get("parent_id") == parent_id:
        return rec.get("run_id")
    return None


def open_child_run(
    tracker: Any, point_dir: Path, parent_id: str | None, create: Callable[[], str]
) -> tuple[str, set[str] | None]:
    """(run id, params): the point's recorded child run set RUNNING again and the names of the
    params it holds, else a new one from `create()` (params None), recorded in run.json before
    an interrupt can leave it unnamed."""
    got: dict[str, Any] = {}
    try:
        with deferred():  # an interrupt waits until the run exists and run.json names it
            got = _open(tracker, point_dir, parent_id, create)
    except KeyboardInterrupt:
        if got.get("run_id"):  # it arrived meanwhile: the run must not stay RUNNING
            with contextlib.suppress(Exception):
                tracker.client.set_terminated(got["run_id"], status="KILLED")
        raise
    return got["run_id"], got["params"]


def _open(tracker: Any, point_dir: Path, parent_id: str | None, create: Callable[[], str]) -> dict[str, Any]:
    old = recorded_run(point_dir, tracker.uri, parent_id)
    if old is not None:
        try:
            run = tracker.client.get_run(old)
            if run.info.lifecycle_stage == "active":
                if run.info.status != "RUNNING":
                    tracker.client.update_run(old, status="RUNNING")
                return {"run_id": old, "params": set(run.data.params)}
        except Exception:
            pass  # deleted or from another store: start afresh
    run_id = create()
    atomic_write_json(point_dir / RUN_FILE, {"uri": tracker.uri, "parent_id": parent_id, "run_id": run_id})
    return {"run_id": run_id, "params": None}


def reconcile_children(tracker: Any, experiment_id: str, parent_id: str, root: Path) -> dict[str, int]:
    """Close (KILLED) the children of `parent_id` left RUNNING that no point directory claims;
    those a point claims stay for that point to continue. Returns {'closed': n, 'kept': n}."""
    claimed = set()
    for rf in (root / "points").glob(f"*/{RUN_FILE}"):
        rid = recorded_run(rf.parent, tracker.uri, parent_id)
        if rid:
            claimed.add(rid)
    filt = f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'RUNNING'"
    out = {"closed": 0, "kept": 0}
    token = None
    while True:
        page = tracker.client.search_runs([experiment_id], filt, max_results=500, page_token=token)
        for r in page:
            if r.info.run_id in claimed:
                out["kept"] += 1
            else:
                tracker.client.set_terminated(r.info.run_id, status="KILLED")
                out["closed"] += 1
        token = page.token
        if not token:
            return out
