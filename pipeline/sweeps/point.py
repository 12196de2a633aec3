"""Run one sweep point end to end: config -> optimizer -> result row -> disk and MLflow.

A point directory holds config.yaml, then (atomically, last) result.json: the done marker.
A re-run of a finished point returns its result without doing anything; a failed point
leaves error.json (message and traceback) and is retried by the next run.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goodhart.eval import metrics as M
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import error_utility_corr
from goodhart.pipeline.config.load import to_yaml
from goodhart.pipeline.config.schema import DistributionalReward, HFReward, RunConfig, SyntheticReward
from goodhart.pipeline.io import atomic_savez, atomic_write_json, atomic_write_text, read_json, short_hash
from goodhart.pipeline.sweeps.tracking import Tracker, flatten
from goodhart.pipeline.train.preemption import EXIT_REQUEUE

RESULT, ERROR, CONFIG, EXAMPLES = "result.json", "error.json", "config.yaml", "examples.jsonl"
PREEMPTED = "preempted.json"  # stopped on a preemption signal after checkpointing: pending, not failed


def point_id(cfg: RunConfig) -> str:
    """A hash of everything that changes the result (not the label, tracking or output dir)."""
    return short_hash(cfg.model_dump(mode="json", exclude={"name", "tracking", "output_dir"}), 10)


def error_label(cfg: RunConfig) -> str:
    """The tail setting of a point, for grouping tables and verdicts."""
    if isinstance(cfg.reward, SyntheticReward):
        mode = "" if cfg.reward.error.mode == "independent" else f" [{cfg.reward.error.mode}]"
        return f"{cfg.reward.error.law.label} x{cfg.reward.error.law.scale:g}{mode}"
    if isinstance(cfg.reward, DistributionalReward):
        return f"{cfg.reward.error.label} x{cfg.reward.error.scale:g}"
    if isinstance(cfg.reward, HFReward):  # one group per reward model (e.g. per data size)
        return f"hf:{Path(cfg.reward.path).name}"
    return cfg.reward.type


def algo_x(cfg: RunConfig) -> tuple[str, float]:
    """(name, value) of the knob that places a point on the KL axis."""
    a = cfg.algo
    kl = getattr(a, "kl", None)
    if kl is not None and getattr(kl, "target", None):  # adaptive KL: the target places the point
        return "kl_target", float(kl.target)
    if hasattr(a, "n"):  # bon, bon-ft: how many samples the best is picked from
        return "n", float(a.n)
    return "beta", float(a.kl.coef)  # tilt, ppo, rloo, grpo: the KL coefficient


@dataclass
class TrackingTarget:
    tracker: Tracker
    experiment_id: str
    parent_id: str | None


def load_result(point_dir: Path) -> dict[str, Any] | None:
    p = point_dir / RESULT
    return read_json(p) if p.is_file() else None


def _save_pool_scores(point_dir: Path, pool) -> str:
    """Base-policy scores, once per pool, beside the sweep (for tail diagnostics in reports).
    Returns the path relative to the sweep directory."""
    root = point_dir.parent.parent if point_dir.parent.name == "points" else point_dir
    rel = f"pools/{short_hash(pool.key)}.npz"
    if not (root / rel).is_file():
        atomic_savez(root / rel, proxy=pool.proxy, utility=pool.utility, error=pool.error)
    return rel


def run_point(
    cfg: RunConfig, point_dir: Path, target: TrackingTarget | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run (or skip, if finished) one point; returns its result row. Raises on failure after
    recording it in error.json and, if tracking, a FAILED child run."""
    done = load_result(point_dir)
    if done is not None:
        return done
    # Under `accelerate launch` every rank runs this; only rank 0 records anything.
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if not main_rank:
        target = None
    point_dir.mkdir(parents=True, exist_ok=True)
    if main_rank:
        atomic_write_text(point_dir / CONFIG, to_yaml(cfg))
    pid = point_id(cfg)
    run_id = None
    if target is not None:
        run_id = target.tracker.start_run(
            target.experiment_id,
            f"{cfg.algo.kind}-{pid}",
            target.parent_id,
            tags={"goodhart.point_id": pid, "goodhart.error": error_label(cfg), "goodhart.algo": cfg.algo.kind},
        )
        target.tracker.log_params(run_id, flatten(cfg.model_dump(mode="json", exclude={"tracking"})))

    def log_step(metrics: dict[str, float], step: int) -> None:
        if run_id is not None:
            target.tracker.log_metrics(run_id, metrics, step)  # type: ignore[union-attr]

    t0 = time.time()
    ctx = PointContext(cfg, point_dir, progress, log_step)
    try:
        from goodhart.pipeline import optimizers

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = optimizers.get(cfg.algo.kind)(ctx)
        pool = ctx._pool
        x_name, x = algo_x(cfg)
        row = {
            "point_id": pid,
            "status": "done",
            "name": cfg.name,
            "algo": cfg.algo.kind,
            "error_law": error_label(cfg),
            "x_name": x_name,
            "x": x,
            **out.row,
            "seconds": round(time.time() - t0, 2),
            "warnings": " | ".join(str(w.message) for w in caught),
            "mlflow_run_id": run_id,
        }
        if not main_rank:
            return row
        if pool is not None:
            row[M.ERROR_UTILITY_CORR] = error_utility_corr(pool.error, pool.utility)
            row["pool_file"] = _save_pool_scores(point_dir, pool)
            if pool.calibration is not None:
                atomic_write_json(point_dir / "calibration.json", pool.calibration)
        if out.examples:
            atomic_write_text(point_dir / EXAMPLES, "".join(json.dumps(e) + "\n" for e in out.examples))
        if run_id is not None:
            tr = target.tracker  # type: ignore[union-attr]
            tr.log_metrics(run_id, row)
            for name in (EXAMPLES, "calibration.json", CONFIG):
                if (point_dir / name).is_file():
                    tr.log_artifact(run_id, point_dir / name)
            for extra in out.artifacts:
                tr.log_artifact(run_id, extra)
            tr.finish(run_id, "FINISHED")
        atomic_write_json(point_dir / RESULT, row)  # last: marks the point done
        (point_dir / ERROR).unlink(missing_ok=True)
        (point_dir / PREEMPTED).unlink(missing_ok=True)
        return row
    except BaseException as e:
        preempted = isinstance(e, SystemExit) and e.code == EXIT_REQUEUE
        if run_id is not None:
            try:
                target.tracker.finish(run_id, "KILLED" if preempted or isinstance(e, KeyboardInterrupt) else "FAILED")  # type: ignore[union-attr]
            except Exception:
                pass
        if not main_rank:
            raise
        if preempted:  # checkpointed; not a failure: the requeued task resumes
            atomic_write_json(point_dir / PREEMPTED, {"point_id": pid, "reason": str(e), "mlflow_run_id": run_id})
            raise
        atomic_write_json(
            point_dir / ERROR,
            {
                "point_id": pid,
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
                "mlflow_run_id": run_id,
            },
        )
        raise
