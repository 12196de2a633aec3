"""Run a sweep's points on this machine: in order, or in K worker processes with threads
pinned so that K processes share the cores instead of fighting over them. Workers import no
MLflow: this process logs the child run each worker recorded (sweeps/child_run.py, log_pending)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from goodhart.eval import metrics as M
from goodhart.pipeline.base.threads import child_threads, choose_threads, pin_threads
from goodhart.pipeline.errors import is_disk_full
from goodhart.pipeline.io import atomic_write_json, read_json
from goodhart.pipeline.sweeps.child_run import PENDING, DeferredTarget, TrackingTarget
from goodhart.pipeline.sweeps.point import ERROR, INTERRUPTED, RESULT, RUNNING, TRAIN_LOG, run_point, stale_reason
from goodhart.pipeline.sweeps.record import ResultsWriter, point_status, write_results
from goodhart.pipeline.sweeps.runstate import deferred, die_with_parent, on_signal, open_child_run, raise_if_interrupted
from goodhart.pipeline.sweeps.spec import Point, SweepConfig
from goodhart.pipeline.sweeps.tracking import Tracker, metric_entities


def _pool_group(p: Point) -> str:
    """Points that share a base pool (same model, prompts, sampling, seed, reward scores)."""
    from goodhart.pipeline.io import short_hash

    return short_hash(
        p.cfg.model_dump(mode="json", include={"model", "prompts", "sampling", "seed", "reward", "utility"})
    )


def build_pools(todo: list[Point], root: Path, progress: bool) -> None:
    """The sweep's first stage, with a bar of its own: each base pool a language model samples
    (and the reward scores) is built before any point runs, so the sweep bar does not sit at 0
    while the first point builds it. The pools are cached; points load them. A pool that fails
    is left to its points, which record the error as they always have."""
    from goodhart.pipeline.base.context import PointContext

    firsts: dict[str, Point] = {}
    for p in todo:
        if not p.cfg.distributional:  # a distributional pool is drawn in milliseconds
            firsts.setdefault(_pool_group(p), p)
    if not firsts:
        return
    bar = tqdm(total=len(firsts), desc="base pool (sample + score)", unit="pool", disable=not progress)
    for p in firsts.values():
        try:
            PointContext(p.cfg, root / "points" / p.id, progress).pool()
        except Exception:  # run_point meets it again and records it as the point's failure
            pass
        bar.update(1)
    bar.close()


def interleave_pools(points: list[Point]) -> list[Point]:
    """The first point of every pool group in turn, then the rest pool by pool, each group's points
    in their order: K workers taking points from the front start on K different pools (each builds
    its own pool's statistics instead of K - 1 of them waiting for one), then work on one pool
    together, so what each process remembers of a pool (its draw, sort orders, null) is reused by
    its next point instead of pushed out by three other pools'."""
    groups: dict[str, list[Point]] = {}
    for p in points:
        groups.setdefault(_pool_group(p), []).append(p)
    return [g[0] for g in groups.values()] + [p for g in groups.values() for p in g[1:]]


def _worker_init(threads: int) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides, and stops the workers with
    # SIGTERM. A worker whose parent dies (kill -9) gets SIGTERM too: no orphan keeps computing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_term)
    import multiprocessing

    origin = multiprocessing.parent_process()
    _busy["parent"] = origin.pid if origin is not None and origin.pid else os.getppid()
    die_with_parent(on_orphan=lambda: leave_orphaned(_busy["dir"] if _busy["task"] else None))
    pin_threads(threads)


_busy: dict[str, Any] = {"task": False, "dir": None, "parent": None}


def _worker_term(signum: int, frame: Any) -> None:
    if not _busy["task"]:  # idle between points: nothing to record
        os._exit(130)
    if _busy["parent"] is not None and os.getppid() != _busy["parent"]:
        leave_orphaned(_busy["dir"])
    on_signal(signum, frame)  # Interrupted, now or at the end of a deferred() record


def leave_orphaned(point_dir: str | None) -> None:
    """The runner is gone (kill -9): leave at once. No MLflow call: the signal may have landed
    inside a commit of this very process, whose lock a retry would wait on for minutes (SQLite
    rolls the open transaction back when the process exits). The point is recorded as
    interrupted on disk; the rerun continues its child run (run.json) or closes it."""
    with contextlib.suppress(Exception):
        d = Path(point_dir) if point_dir else None
        if d is not None and not (d / RESULT).is_file():
            atomic_write_json(d / INTERRUPTED, {"signal": "runner died", "at": time.time()})
            (d / RUNNING).unlink(missing_ok=True)
    os._exit(143)


def _worker(
    cfg_json: dict, point_dir: str, uri: str | None, exp: str | None, parent: str | None
) -> tuple[str, str | None]:
    from goodhart.pipeline.config.schema import RunConfig

    _busy["task"], _busy["dir"] = True, point_dir
    try:
        cfg = RunConfig.model_validate(cfg_json)
        # No MLflow in a worker: the point's child run is recorded for the sweep's process to log.
        target = DeferredTarget(uri, exp, parent) if uri and exp else None
        run_point(cfg, Path(point_dir), target, progress=False)
        return point_dir, None
    except KeyboardInterrupt:
        # run_point has recorded the point as interrupted; take no further task from the queue.
        os._exit(130)
    except Exception as e:
        if is_disk_full(e):
            raise  # the parent stops the sweep (f.result() re-raises it there)
        return point_dir, f"{type(e).__name__}: {e}"
    finally:
        _busy["task"] = False


def log_recorded(target: TrackingTarget, point_dir: Path) -> None:
    """Log the child run a worker recorded for this point (sweeps/child_run.py). Tracking trouble
    is a warning: the point's results are on disk, and the record stays for the next run."""
    import sys

    try:
        log_pending(target.tracker, point_dir)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        print(
            f"goodhart: warning: point {point_dir.name}: could not log its MLflow run "
            f"({type(e).__name__}: {first}); the next run of the sweep tries again",
            file=sys.stderr,
        )


STOP_GRACE = 8.0  # seconds workers get to record their point as interrupted before SIGKILL


def stop_workers(ex: ProcessPoolExecutor) -> None:
    """Cancel what has not started, SIGTERM the workers (each records its point as interrupted),
    SIGKILL any still there after STOP_GRACE seconds. The executor's own shutdown would wait for
    every queued point to run."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(OSError):
                os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(1.0)


def run_local(
    sweep: SweepConfig,
    points: list[Point],
    root: Path,
    jobs: int = 1,
    progress: bool = True,
    target: TrackingTarget | None = None,
) -> dict[str, Any]:
    """Run every unfinished point; returns {'done': n, 'skipped': n, 'failed': {id: message}}."""
    # Not done: no valid result, or one scored by a reward that has changed since (run_point
    # says which, sets the old result aside and runs the point again).
    todo = [p for p in points if point_status(root, p.id) != "done" or stale_reason(p.cfg, root / "points" / p.id)]
    summary: dict[str, Any] = {"skipped": len(points) - len(todo), "done": 0, "failed": {}}
    if target is not None:  # what workers of a stopped run finished and it had not logged yet
        for p in points:
            if (root / "points" / p.id / PENDING).is_file():
                log_recorded(target, root / "points" / p.id)
    from goodhart.pipeline.base.pool import stats_cache_bytes

    stats_cache_bytes()  # a bad GOODHART_STATS_CACHE_MB is one line before any point, not a failure in each
    if not todo:
        write_results(root)
        return summary
    if any(not p.cfg.distributional for p in todo):  # a language model runs: threads from the free cores
        pin_threads(choose_threads(1))
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # under `accelerate launch` the other ranks would wait on it
        build_pools(todo, root, progress)
    bar = tqdm(total=len(todo), desc=f"sweep {sweep.name}", unit="point", disable=not progress)
    table = ResultsWriter(root)  # the sweep's caller writes the complete table at the end

    def one(p: Point) -> None:
        try:
            run_point(p.cfg, root / "points" / p.id, target, progress=progress)
            summary["done"] += 1
        except Exception as e:
            if is_disk_full(e):  # every next point would fail the same way: stop at the first
                raise
            summary["failed"][p.id] = f"{type(e).__name__}: {e}"
        bar.update(1)
        table.maybe()
        raise_if_interrupted()  # a signal whose exception a finalizer swallowed stops the sweep here

    if jobs <= 1:
        for p in todo:
            one(p)
    else:
        # The first point of each language-model pool group runs here first: it samples and
        # scores the pool once, so the workers only read the cache. A distributional pool is
        # drawn in milliseconds and its statistics are shared through the disk (pool_memo):
        # the workers start at once, on different pools first, so their nulls build side by side.
        firsts: dict[str, Point] = {}
        for p in todo:
            if not p.cfg.distributional:
                firsts.setdefault(_pool_group(p), p)
        for p in firsts.values():
            one(p)
        rest = interleave_pools([p for p in todo if p not in firsts.values()])
        threads = choose_threads(jobs)  # each worker gets its share of the free cores
        t = target
        with child_threads(threads):  # the workers start (on submit) with their thread count set
            ex = ProcessPoolExecutor(
                jobs, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(threads,)
            )
            try:
                futs = [
                    ex.submit(
                        _worker,
                        p.cfg.model_dump(mode="json"),
                        str(root / "points" / p.id),
                        t.tracker.uri if t else None,
                        t.experiment_id if t else None,
                        t.parent_id if t else None,
                    )
                    for p in rest
                ]
                by_dir = {str(root / "points" / p.id): p for p in rest}
                for f in as_completed(futs):
                    d, err = f.result()
                    if t is not None:
                        log_recorded(t, Path(d))
                    if err:
                        summary["failed"][by_dir[d].id] = err
                    else:
                        summary["done"] += 1
                    bar.update(1)
                    table.maybe()
                    raise_if_interrupted()  # (as in one(): logging a run is SQLAlchemy, finalizers and all)
            except BaseException:  # Ctrl-C, SIGTERM, or a worker that died: stop now, not after the queue
                stop_workers(ex)
                raise
        ex.shutdown(wait=True)
    bar.close()
    return summary


def step_history(train_log: Path, step_ms: dict[str, int], default_ms: int) -> list[Any]:
    """MLflow Metric entities of every step in a point's train_metrics.jsonl (train/ names; the
    last line of a step wins, as in the report), stamped when the step was logged."""
    if not train_log.is_file():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in train_log.read_text().splitlines():
        try:
            d = json.loads(line)
            by_step[int(d.pop("step"))] = d
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a torn last line (killed mid-write)
    out: list[Any] = []
    for step in sorted(by_step):
        named = {M.train_name(k): v for k, v in by_step[step].items()}
        out += metric_entities(named, step, step_ms.get(str(step), default_ms))
    return out


def log_pending(tracker: Tracker, point_dir: Path) -> str | None:
    """Log the run a worker recorded in <point_dir>/PENDING (if any) and return its id: the
    point's child run (continued when run.json names one), the params, step history, final
    numbers and tags in one batch, the artifacts, the end. The run id then goes into the point's
    result.json (or error.json), and the pending file is removed."""
    f = point_dir / PENDING
    if not f.is_file():
        return None
    rec = read_json(f)
    tr = tracker if rec["uri"] == tracker.uri else Tracker(rec["uri"])
    parent = rec["parent_id"]
    # Held from the run's creation to its end and the files naming it: a Ctrl-C meanwhile (the
    # sweep's process logs while it waits on workers) would leave the run RUNNING; logging a
    # finished point's run takes ~60 ms, and the signal lands when it is done.
    with deferred():
        run_id, have = open_child_run(
            tr,
            point_dir,
            parent,
            lambda: tr.start_run(rec["experiment_id"], rec["name"], parent, rec["tags"], start_time=rec["start_ms"]),
        )
        params = {k: v for k, v in rec["params"].items() if have is None or k not in have}
        metrics = step_history(point_dir / TRAIN_LOG, rec["step_ms"], rec["start_ms"])
        metrics += metric_entities(rec.get("final", {}), rec["last_step"], rec.get("end_ms"))
        tr.log_batch(run_id, metrics, rec.get("final_tags"), params=params)
        tr.log_files(
            run_id, {n: e["text"] if "text" in e else Path(e["path"]) for n, e in rec.get("files", {}).items()}
        )
        tr.finish(run_id, rec.get("status", "FAILED"), end_time=rec.get("end_ms"))
        for name in (RESULT, ERROR):
            with contextlib.suppress(OSError, ValueError, TypeError):
                row = read_json(point_dir / name)
                if isinstance(row, dict) and row.get("mlflow_run_id") != run_id:
                    row["mlflow_run_id"] = run_id
                    atomic_write_json(point_dir / name, row)
        f.unlink(missing_ok=True)
    return run_id
