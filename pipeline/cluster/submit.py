"""A sweep on SLURM, as engine functions the CLI (and a notebook) call: plan a submission of
the points still to run, submit it as one job array, and read back where every point stands.
Imports: cluster.slurm, sweeps (spec, record, point), config.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goodhart.pipeline.cluster import slurm as S
from goodhart.pipeline.config.slurm import SlurmConfig
from goodhart.pipeline.errors import ConfigError, SlurmError
from goodhart.pipeline.io import atomic_write_json, atomic_write_text
from goodhart.pipeline.sweeps.lock import SweepLock
from goodhart.pipeline.sweeps.point import TrackingTarget, load_result
from goodhart.pipeline.sweeps.record import PARENT, close_parent, reopen_or_start_parent, write_results, write_sweep_dir
from goodhart.pipeline.sweeps.spec import Point, SweepConfig
from goodhart.pipeline.sweeps.tracking import check_store, resolve_uri


@dataclass
class Plan:
    """What `submit` would do: which points go into the array and what each task runs."""

    sweep: SweepConfig
    points: list[Point]
    root: Path
    sweep_file: Path
    settings: SlurmConfig
    uri: str | None
    todo: list[int]
    live: dict[int, str] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    resume: bool = False
    argv: list[str] = field(default_factory=list)
    env_text: str = ""
    accel_text: str | None = None
    overrides: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What a dry run found that a real submission would refuse (the tracking store)."""

    @property
    def script(self) -> Path:
        return self.root / "sweep_array.sbatch"

    def mark(self, p: Point) -> str:
        return "submit" if p.index in self.todo else ("live" if p.index in self.live else "done")

    def describe(self) -> str:
        """The dry run: every point's fate, the files each task reads, and the sbatch line."""
        lines = [
            f"# {p.index:4d}  {p.id}  {self.mark(p):6s}  " + " ".join(f"{k}={v}" for k, v in p.overrides.items())
            for p in self.points
        ]
        lines += [
            f"# {S.SCRIPT} (submitted as {self.script}):",
            S.SCRIPT.read_text(),
            f"# {self.root / S.LAUNCH_ENV}:",
            self.env_text,
        ]
        if self.accel_text:
            lines.append(f"# {self.root / S.ACCEL}:\n{self.accel_text}")
        kinds = "resume: missing and failed" if self.resume else "not yet done"
        lines += [
            f"# {len(self.todo)} of {len(self.points)} point(s) to submit ({kinds}): {S.array_spec(self.todo)}",
            shlex.join(self.argv),
        ]
        lines += [f"# note: {n}" for n in self.notes]
        return "\n".join(lines)


def plan(
    sweep: SweepConfig,
    points: list[Point],
    root: Path,
    sweep_file: Path,
    flags: dict[str, Any],
    resume: bool = False,
    overrides: list[str] | None = None,
    dry_run: bool = False,
) -> Plan:
    """Work out a submission without touching the disk or the scheduler. `flags` are command-line
    settings over the sweep file's `slurm:` section. Fresh, or `resume`: missing + failed points,
    never one that is queued or running. A dry run submits nothing, so it needs no tracking
    server: what a real submission would refuse is a note in its output instead."""
    root = root.absolute()  # tasks may start in another directory
    cfg = S.merged_settings(sweep.slurm, flags)
    tracking = points[0].cfg.tracking
    uri = resolve_uri(tracking) if tracking.enabled else None
    notes: list[str] = []
    try:
        S.check_tracking_uri(uri, cfg.allow_sqlite)
    except ConfigError as e:
        if not dry_run:
            raise
        notes.append(f"a real submission would be refused: {e}")

    jobs = S.load_jobs(root)
    if jobs and not resume:
        ids = ", ".join(str(j["job_id"]) for j in jobs)
        raise SlurmError(
            f"{root} was already submitted to SLURM (job {ids}): `goodhart status {root}` shows it; "
            "add --resume to submit only its missing and failed points"
        )
    live: dict[int, str] = {}
    failed: set[int] = set()
    if jobs:
        snap = S.snapshot(root)
        if snap.unknown:
            raise SlurmError(
                f"cannot tell which tasks of {root} are still queued or running ({snap.unknown}); "
                "--resume could start a point twice: try again when squeue answers"
            )
        live = {p.index: p.id for p in snap.points if p.status in ("pending", "running")}
        failed = {p.index for p in snap.points if p.status == "failed"}
        moved = [i for i, pid in live.items() if i >= len(points) or points[i].id != pid]
        if moved:
            raise SlurmError(
                f"the sweep's points changed while tasks {S.short_list(sorted(moved))} are queued or running "
                f"(their index now names another point): wait for them or scancel them, then --resume"
            )
    todo = [p.index for p in points if p.index not in live and load_result(root / "points" / p.id) is None]
    out = Plan(
        sweep,
        points,
        root,
        sweep_file,
        cfg,
        uri,
        todo,
        live,
        failed,
        bool(jobs),
        overrides=list(overrides or []),
        notes=notes,
    )
    if not todo:
        return out

    accel_text, nproc, use_cpu = None, 1, False
    if cfg.accelerate_config:
        accel_text, nproc, use_cpu = S.prepare_accelerate(
            cfg.accelerate_config,
            sweep_file.parent,
            {p.index: p.cfg.algo.kind for p in points if p.index in todo},
            cfg.gpus,
        )
    goodhart = S.find_executable("goodhart")
    accelerate = S.find_executable("accelerate") if accel_text else S.find_executable_or_name("accelerate")
    out.env_text = S.launch_env_text(
        goodhart, accelerate, root / S.ACCEL if accel_text else None, nproc, cfg.max_requeues, use_cpu
    )
    out.accel_text = accel_text
    out.argv = S.sbatch_argv(cfg, root, out.script, todo, f"goodhart-{sweep.name}")
    if not S.SCRIPT.is_file():
        raise SlurmError(
            f"{S.SCRIPT} is missing: --backend slurm needs goodhart installed from its repository (pip install -e .)"
        )
    return out


def submit(p: Plan) -> tuple[str, TrackingTarget | None]:
    """Write the sweep directory, open (or reopen) the parent run, submit the array. Returns
    (job id, parent run). A failed sbatch closes a parent run it had just opened. Holds the sweep
    lock meanwhile, so a local run or a second submission cannot interleave."""
    from goodhart.pipeline.sweeps.invoke import check_packages, check_rewards

    check_packages(p.points)
    check_rewards(p.points, callables=False)  # a missing plug-in is a config error here, not in every task
    with SweepLock(p.root):
        return _submit(p)


def _submit(p: Plan) -> tuple[str, TrackingTarget | None]:
    if p.uri is not None:
        check_store(p.uri)  # a dead server or a locked store: one line before anything is written
    write_sweep_dir(p.root, p.sweep_file, p.sweep, p.points)
    (p.root / "logs").mkdir(exist_ok=True)
    atomic_write_text(p.script, S.SCRIPT.read_text())
    atomic_write_text(p.root / S.LAUNCH_ENV, p.env_text)
    if p.accel_text:
        atomic_write_text(p.root / S.ACCEL, p.accel_text)
    parent, created = reopen_or_start_parent(p.sweep, p.points, p.root, p.uri, backend="slurm")
    try:
        job = S.submit(p.argv)
    except SlurmError:
        if created and parent is not None:
            parent.tracker.finish(parent.parent_id, "FAILED")
            (p.root / PARENT).unlink(missing_ok=True)
        raise
    S.record_job(
        p.root,
        {
            "job_id": job,
            "array": S.array_spec(p.todo, p.settings.max_concurrent),
            "points": {str(i): p.points[i].id for i in p.todo},
            "submitted": S.now_iso(),
            "resume": p.resume,
            "sweep_file": str(p.sweep_file.resolve()),
            "overrides": p.overrides,
            "output": str(p.root.parent),
            "argv": p.argv,
        },
    )
    atomic_write_json(p.root / "slurm_settings.json", p.settings.model_dump(mode="json"))
    return job, parent


@dataclass
class Status:
    """Where a SLURM sweep stands: the scheduler's and the disk's view, the results table, and
    the command that resubmits what is missing or failed (None when nothing is)."""

    snapshot: S.Snapshot
    results: Any
    resubmit: str | None
    closed: str | None


def status(root: Path) -> Status:
    """Per point done / running / pending / failed / missing; rewrites results.csv and, once
    nothing is queued, running or missing, closes the sweep's MLflow parent run."""
    snap = S.snapshot(root)
    counts = snap.counts()
    bad = [p for p in snap.points if p.status == "failed"]
    df = write_results(root)
    resubmit = None
    if (bad or counts.get("missing")) and not snap.unknown:
        last = next((j for j in reversed(snap.jobs) if j.get("sweep_file")), {"sweep_file": "SWEEP_FILE"})
        out = ["--output", last["output"]] if last.get("output") else []
        resubmit = shlex.join(
            [
                "goodhart",
                "sweep",
                last["sweep_file"],
                *last.get("overrides", []),
                *out,
                "--backend",
                "slurm",
                "--resume",
            ]
        )
    closed = None
    if not snap.live and not counts.get("missing"):
        closed = close_parent(root, df, "FINISHED" if not bad else "FAILED")
    return Status(snap, df, resubmit, closed)
