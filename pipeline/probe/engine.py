"""One entry point for the CLI: run a probe mode, then (optionally) record it in MLflow."""

from __future__ import annotations

from typing import Any, Protocol

from goodhart.pipeline.config.schema import RunConfig
from goodhart.pipeline.probe.config import MODES, ProbeConfig
from goodhart.pipeline.probe.run import ProbeResult


def run_probe(mode: str, cfg: RunConfig, pcfg: ProbeConfig, progress: bool = True) -> ProbeResult:
    """Run `mode` (random | base | optimize) of the probe of cfg.reward."""
    if mode == "random":
        from goodhart.pipeline.probe.run import run_random

        return run_random(cfg, pcfg, progress)
    if mode == "base":
        from goodhart.pipeline.probe.run import run_base

        return run_base(cfg, pcfg, progress)
    if mode == "optimize":
        from goodhart.pipeline.probe.optimize import run_optimize

        return run_optimize(cfg, pcfg, progress)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


class RunTracker(Protocol):
    """What logging needs of goodhart.pipeline.sweeps.tracking.Tracker (passed in by the CLI:
    this room sits below sweeps and cannot import it)."""

    uri: str

    def experiment_id(self, name: str) -> str: ...
    def start_run(self, experiment_id: str, name: str, parent_id: Any = None, tags: Any = None) -> str: ...
    def log_params(self, run_id: str, params: dict[str, str]) -> None: ...
    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int = 0) -> None: ...
    def log_artifact(self, run_id: str, path: Any, artifact_path: str | None = None) -> None: ...
    def finish(self, run_id: str, status: str = "FINISHED") -> None: ...


def log_probe(tracker: RunTracker, experiment: str, result: ProbeResult, params: dict[str, str]) -> str:
    """One MLflow run per probe mode: params (the flattened configs), metrics (eval/metrics.py
    PROBE_*; the search's best-so-far per step), the mode's JSON, arrays and plots as artifacts."""
    run_id = tracker.start_run(
        tracker.experiment_id(experiment),
        f"probe-{result.mode}",
        tags={"goodhart.kind": "probe", "goodhart.probe_mode": result.mode, "goodhart.probe_dir": str(result.dir)},
    )
    try:
        tracker.log_params(run_id, params)
        tracker.log_metrics(run_id, result.metrics)
        for step, m in result.step_metrics:
            tracker.log_metrics(run_id, m, step)
        for f in result.files:
            tracker.log_artifact(run_id, f, "probe")
    except Exception:
        tracker.finish(run_id, "FAILED")
        raise
    tracker.finish(run_id)
    return run_id
