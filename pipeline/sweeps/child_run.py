"""A point's MLflow child run, logged as the point runs (LiveRun) or, in a local sweep's worker
processes, recorded on disk and logged by the sweep's own process (PendingRun; sweeps/local.py log_pending).

Live (the sweep's process, `--jobs 1`, `goodhart run`, a SLURM task): the run is created when
the point starts (run.json names it: a rerun continues it), per-step metrics go at most every
5 s (StepLog), and the end is three calls: one log_batch with the params, the steps not sent yet,
the final numbers and the tags; the artifacts, written straight into the run's artifact
location; the run's end.

Recorded (a `--jobs K` worker): the worker never imports MLflow (~3 s of CPU a process, for
mlflow and its SQLite store). It writes what it would log to <point dir>/mlflow_pending.json --
name, tags, params, final numbers, artifacts, start and end, the status -- before result.json,
and the runner logs it when the worker hands the point back: the run (with the point's own start
time), one batch, its end (with the point's end time); the step history is read from the point's
train_metrics.jsonl (complete across resumes; the last line of a step wins), each step stamped
when the worker logged it. Then the run id goes into result.json (error.json for a failure) and
the pending file is removed. A runner stopped before that leaves the file, and the next run of
the sweep logs it. A worker's run appears in MLflow when its point ends, not while it trains.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goodhart.eval import metrics as M
from goodhart.pipeline.io import atomic_write_json
from goodhart.pipeline.sweeps.runstate import deferred, open_child_run
from goodhart.pipeline.sweeps.tracking import StepLog, Tracker, metric_entities

PENDING = "mlflow_pending.json"
"""What a worker's point would have logged to MLflow, until the sweep's process has logged it."""


@dataclass
class TrackingTarget:
    """Where a point logs itself: a store (through a client), an experiment, a parent run."""

    tracker: Tracker
    experiment_id: str
    parent_id: str | None


@dataclass
class DeferredTarget:
    """Where a worker's point is to be logged, by the sweep's process (no client, no MLflow here)."""

    uri: str
    experiment_id: str
    parent_id: str | None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class LiveRun:
    """The child run of a point run in this process, logged as it runs."""

    def __init__(self, target: TrackingTarget, point_dir: Path, name: str, tags: dict[str, str]):
        tr = self.tracker = target.tracker
        self.run_id, self.have = open_child_run(
            tr, point_dir, target.parent_id, lambda: tr.start_run(target.experiment_id, name, target.parent_id, tags)
        )
        self.steps = StepLog(tr, self.run_id)
        self.last_step = 0  # the final numbers are logged at the last training step

    def params(self, params: dict[str, str]) -> None:
        """Sent with the first batch; a continued run gets those it does not hold yet."""
        self.steps.params = {k: v for k, v in params.items() if self.have is None or k not in self.have}

    def step(self, metrics: dict[str, Any], step: int) -> None:
        self.last_step = max(self.last_step, int(step))
        self.steps.add(metrics, step)

    def done(self, row: dict[str, Any], tags: dict[str, str], files: dict[str, Any]) -> None:
        # The steps not sent yet, the evaluated result (== results.csv, under eval/, at the last
        # training step so it never sits at step 0 ahead of the training curves), the params
        # and tags: one batch; every artifact in one; the run's end.
        final = metric_entities({M.eval_name(k): v for k, v in row.items()}, self.last_step)
        self.tracker.log_batch(self.run_id, self.steps.take() + final, tags, params=self.steps.take_params())
        self.tracker.log_files(self.run_id, files)
        self.tracker.finish(self.run_id, "FINISHED")

    def stopped(self, status: str, interrupted: bool) -> None:
        if not interrupted:  # the steps logged so far (an interrupt: the one try below only)
            with contextlib.suppress(Exception):
                self.steps.flush()
        try:
            with deferred():  # a second Ctrl-C must not leave the run RUNNING
                # Stopped: one try. The signal may have landed inside this process's own
                # commit, whose lock a retry would wait on (the rerun closes the run).
                self.tracker.finish(self.run_id, status, attempts=1 if interrupted else 8)
        except Exception:
            pass


class PendingRun:
    """The child run of a point run in a worker: recorded in PENDING when the point ends."""

    run_id = None  # known once the sweep's process has logged it

    def __init__(self, target: DeferredTarget, point_dir: Path, name: str, tags: dict[str, str]):
        self.point_dir = point_dir
        self.rec: dict[str, Any] = {
            "uri": target.uri,
            "experiment_id": target.experiment_id,
            "parent_id": target.parent_id,
            "name": name,
            "tags": dict(tags),
            "params": {},
            "start_ms": _now_ms(),
            "step_ms": {},  # step -> when it was logged (the history itself: train_metrics.jsonl)
            "last_step": 0,
        }
        (point_dir / PENDING).unlink(missing_ok=True)  # an earlier attempt's: this one replaces it

    def params(self, params: dict[str, str]) -> None:
        self.rec["params"] = dict(params)

    def step(self, metrics: dict[str, Any], step: int) -> None:
        self.rec["step_ms"][str(int(step))] = _now_ms()
        self.rec["last_step"] = max(self.rec["last_step"], int(step))

    def done(self, row: dict[str, Any], tags: dict[str, str], files: dict[str, Any]) -> None:
        self._write("FINISHED", _numbers({M.eval_name(k): v for k, v in row.items()}), tags, files)

    def stopped(self, status: str, interrupted: bool) -> None:
        if not interrupted:  # interrupted: pending, rerun next time (its record then)
            with contextlib.suppress(Exception):
                self._write(status, {}, {}, {})

    def _write(self, status: str, final: dict[str, float], tags: dict[str, str], files: dict[str, Any]) -> None:
        def entry(what: Any) -> dict[str, str]:
            if isinstance(what, bytes):
                return {"text": what.decode()}
            return {"text": what} if isinstance(what, str) else {"path": str(Path(what).resolve())}

        self.rec.update(
            status=status,
            end_ms=_now_ms(),
            final=final,
            final_tags=dict(tags),
            files={name: entry(what) for name, what in files.items()},
        )
        atomic_write_json(self.point_dir / PENDING, self.rec)


def open_run(
    target: TrackingTarget | DeferredTarget, point_dir: Path, name: str, tags: dict[str, str]
) -> LiveRun | PendingRun:
    if isinstance(target, DeferredTarget):
        return PendingRun(target, point_dir, name, tags)
    return LiveRun(target, point_dir, name, tags)
