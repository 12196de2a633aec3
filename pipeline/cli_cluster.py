"""Cluster verbs of the `goodhart` CLI (SLURM backend, tracking server). Kept apart from
cli.py so the cluster path reads on its own.

    goodhart sweep FILE --backend slurm [--resume] [--dry-run] [--partition P] [--time T] ...
    goodhart status SWEEP_DIR        (a SLURM sweep: queue + disk, failed points' logs)
    goodhart server [--port P] [--host H] [--backend-store-uri URI]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SLURM_FLAGS = {
    # flag: (SlurmConfig field, type, help)
    "--partition": ("partition", str, "SLURM partition(s), comma-separated"),
    "--account": ("account", str, "account to charge"),
    "--qos": ("qos", str, "quality of service"),
    "--time": ("time", str, "time limit per task, e.g. 04:00:00 or 1-00:00:00"),
    "--gpus": ("gpus", int, "GPUs per task (one task = one point)"),
    "--gpu-type": ("gpu_type", str, "GPU type for --gres=gpu:TYPE:N"),
    "--cpus-per-task": ("cpus_per_task", int, "CPU cores per task"),
    "--mem": ("mem", str, "memory per node, e.g. 32G"),
    "--max-concurrent": ("max_concurrent", int, "run at most K tasks at once (--array=...%%K)"),
    "--accelerate-config": ("accelerate_config", str, "accelerate config (path or configs/accelerate/ name) each task launches under"),
}


def add_cluster_verbs(sub: argparse._SubParsersAction) -> None:
    """Register cluster-only verbs and the SLURM options of `sweep` on the main parser."""
    sweep = sub.choices.get("sweep")
    if sweep is not None:
        g = sweep.add_argument_group("slurm (--backend slurm; flags override the sweep file's slurm: section)")
        for flag, (dest, typ, help_) in SLURM_FLAGS.items():
            g.add_argument(flag, dest=f"slurm_{dest}", type=typ, default=None, help=help_,
                           metavar=flag.lstrip("-").upper().replace("-", "_"))
        g.add_argument("--sbatch-arg", dest="slurm_extra_args", action="append", default=[], metavar="--OPT[=VALUE]",
                       help="an extra sbatch option, repeatable; write it as --sbatch-arg=--constraint=a100")
        g.add_argument("--allow-sqlite", dest="slurm_allow_sqlite", action="store_true",
                       help="let tasks write a SQLite tracking store (one machine, local disk only)")

    p = sub.add_parser("server", help="a lean MLflow tracking server (the tracking URI for SLURM sweeps)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 for compute nodes)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--backend-store-uri", default=None, help="database URI (default sqlite:///./mlflow.db)")
    p.add_argument("--artifacts-destination", default=None, help="where artifacts go (default ./mlartifacts)")
    p.add_argument("--allowed-hosts", default=None, help="Host headers to accept (default: loopback, private IPs, this host's names)")
    p.set_defaults(fn=cmd_server)


# ---------------------------------------------------------------------------------------------
def cmd_server(args: argparse.Namespace) -> int:
    from pipeline.server import serve

    return serve(args.host, args.port, args.backend_store_uri, args.artifacts_destination, args.allowed_hosts)


# ---------------------------------------------------------------------------------------------
def _flags(args: argparse.Namespace) -> dict[str, Any]:
    out = {dest: getattr(args, f"slurm_{dest}", None) for dest, _, _ in SLURM_FLAGS.values()}
    out["extra_args"] = list(getattr(args, "slurm_extra_args", []) or [])
    out["allow_sqlite"] = bool(getattr(args, "slurm_allow_sqlite", False))
    return out


def sweep_slurm(args: argparse.Namespace, sweep, points: list, root: Path) -> int:
    """`goodhart sweep FILE --backend slurm`: submit one job array of the points still to run."""
    from pipeline.cli import UsageError
    from pipeline.slurm import SlurmError

    try:
        return _sweep_slurm(args, sweep, points, root)
    except SlurmError as e:
        raise UsageError(str(e)) from None


def _sweep_slurm(args: argparse.Namespace, sweep, points: list, root: Path) -> int:
    from pipeline import slurm as S
    from pipeline.cli import UsageError
    from pipeline.run import RESULT
    from pipeline.tracking import resolve_uri

    sweep_file = Path(args.file)
    root = root.absolute()  # tasks may start in another directory
    cfg = S.merged_settings(sweep.slurm, _flags(args))
    tracking = points[0].cfg.tracking
    uri = resolve_uri(tracking) if tracking.enabled else None
    S.check_tracking_uri(uri, cfg.allow_sqlite)

    # --- which points: fresh, or --resume (missing + failed, never a live one) ----------------
    jobs = S.load_jobs(root)
    if jobs and not args.resume:
        ids = ", ".join(str(j["job_id"]) for j in jobs)
        raise UsageError(f"{root} was already submitted to SLURM (job {ids}): `goodhart status {root}` shows it; "
                         "add --resume to submit only its missing and failed points")
    live: dict[int, str] = {}
    failed: set[int] = set()
    if jobs:
        snap = S.snapshot(root)
        live = {p.index: p.id for p in snap.points if p.status in ("pending", "running")}
        failed = {p.index for p in snap.points if p.status == "failed"}
        moved = [i for i, pid in live.items() if i >= len(points) or points[i].id != pid]
        if moved:
            raise UsageError(f"the sweep's points changed while tasks {S._short_list(sorted(moved))} are queued or running "
                             f"(their index now names another point): wait for them or scancel them, then --resume")
    todo = [p.index for p in points if p.index not in live and not (root / "points" / p.id / RESULT).is_file()]
    if not todo:
        n_live = len(live)
        print(f"nothing to submit: {len(points) - n_live} point(s) done" + (f", {n_live} queued or running" if n_live else "")
              + f".  `goodhart status {root}`")
        return 0

    # --- what each task runs ------------------------------------------------------------------
    accel_text, nproc, use_cpu = None, 1, False
    if cfg.accelerate_config:
        accel_text, nproc, use_cpu = S.prepare_accelerate(cfg.accelerate_config, sweep_file.parent,
                                                 {p.index: p.cfg.algo.kind for p in points if p.index in todo}, cfg.gpus)
    goodhart = S.find_executable("goodhart")
    accelerate = S.find_executable("accelerate") if accel_text else "accelerate"
    env_text = S.launch_env_text(goodhart, accelerate, root / S.ACCEL if accel_text else None, nproc, cfg.max_requeues, use_cpu)
    script = root / "sweep_array.sbatch"
    argv = S.sbatch_argv(cfg, root, script, todo, f"goodhart-{sweep.name}")

    if not S.SCRIPT.is_file():
        raise S.SlurmError(f"{S.SCRIPT} is missing: --backend slurm needs goodhart installed from its repository (pip install -e .)")
    if args.dry_run:
        import shlex

        for p in points:
            mark = "submit" if p.index in todo else ("live" if p.index in live else "done")
            print(f"# {p.index:4d}  {p.id}  {mark:6s}  " + " ".join(f"{k}={v}" for k, v in p.overrides.items()))
        print(f"# {S.SCRIPT} (submitted as {script}):")
        print(S.SCRIPT.read_text())
        print(f"# {root / S.LAUNCH_ENV}:")
        print(env_text)
        if accel_text:
            print(f"# {root / S.ACCEL}:\n{accel_text}")
        kinds = "resume: missing and failed" if jobs else "not yet done"
        print(f"# {len(todo)} of {len(points)} point(s) to submit ({kinds}): {S.array_spec(todo)}")
        print(shlex.join(argv))
        print("# --dry-run: nothing written, nothing submitted")
        return 0

    # --- write the sweep directory, open (or reopen) the parent run, submit --------------------
    from pipeline.io import atomic_write_json, atomic_write_text
    from pipeline.sweep import write_sweep_dir

    write_sweep_dir(root, sweep_file, sweep, points)
    (root / "logs").mkdir(exist_ok=True)
    atomic_write_text(script, S.SCRIPT.read_text())
    atomic_write_text(root / S.LAUNCH_ENV, env_text)
    if accel_text:
        atomic_write_text(root / S.ACCEL, accel_text)
    parent, created = _parent_run(sweep, points, root, uri)
    try:
        job = S.submit(argv)
    except S.SlurmError:
        if created and parent is not None:
            parent.tracker.finish(parent.parent_id, "FAILED")
            (root / S.PARENT).unlink(missing_ok=True)
        raise
    S.record_job(root, {
        "job_id": job, "array": S.array_spec(todo, cfg.max_concurrent), "points": {str(i): points[i].id for i in todo},
        "submitted": S.now_iso(), "resume": bool(jobs), "sweep_file": str(sweep_file.resolve()),
        "overrides": list(args.overrides), "output": str(root.parent), "argv": argv,
    })
    atomic_write_json(root / "slurm_settings.json", cfg.model_dump(mode="json"))
    print(f"submitted job array {job}: {len(todo)} task(s), --array={S.array_spec(todo, cfg.max_concurrent)}"
          + (f" (resume: {len(failed & set(todo))} failed, {len(set(todo) - failed)} missing)" if jobs else ""))
    print(f"  sweep dir: {root}")
    print(f"  logs:      {root / 'logs'}/{job}_<index>.out|.err")
    print(f"  watch:     goodhart status {root}")
    if parent is not None:
        print(f"  MLflow:    experiment '{sweep.name}' at {uri} (parent run {parent.parent_id})")
    return 0


def _parent_run(sweep, points: list, root: Path, uri: str | None):
    """(target, created): the parent run of parent.json when it is on this URI (reopened for a
    resume), else a new one recorded in parent.json. (None, False) when tracking is off."""
    from pipeline import slurm as S
    from pipeline.io import atomic_write_json, read_json
    from pipeline.local import start_parent
    from pipeline.run import TrackingTarget
    from pipeline.tracking import Tracker, _retry

    if uri is None:
        return None, False
    pj = root / S.PARENT
    if pj.is_file():
        old = read_json(pj)
        if old.get("uri") == uri:
            target = TrackingTarget(Tracker(uri), old["experiment_id"], old["run_id"])
            try:
                _retry(lambda: target.tracker.client.update_run(old["run_id"], status="RUNNING"))
                return target, False
            except Exception:
                pass  # deleted or unreadable: start a new one
    target = start_parent(sweep, points, root)
    if target is None:
        return None, False
    target.tracker.set_tags(target.parent_id, {"goodhart.backend": "slurm"})
    atomic_write_json(pj, {"uri": uri, "experiment_id": target.experiment_id, "run_id": target.parent_id})
    return target, True


# ---------------------------------------------------------------------------------------------
def status_slurm(root: Path) -> int:
    """`goodhart status SWEEP_DIR` for a SLURM sweep: per point done / running / pending /
    failed / missing, failed ones with their error and log. Also rewrites results.csv and, once
    nothing is queued, running or missing, closes the sweep's MLflow parent run."""
    from pipeline import slurm as S
    from pipeline.cli import UsageError
    from pipeline.sweep import write_results
    from pipeline.tables import render

    try:
        snap = S.snapshot(root)
    except S.SlurmError as e:
        raise UsageError(str(e)) from None
    print(render(["#", "point", "status", "task", "slurm", "overrides", "detail"], S.status_rows(snap)))
    bad = [p for p in snap.points if p.status == "failed"]
    for p in bad:
        print(f"FAILED #{p.index} {p.id} (task {p.task or '-'}): {p.detail or p.slurm}", file=sys.stderr)
        if p.logs:
            print(f"    log: {p.logs[1]}  (stdout: {p.logs[0]})", file=sys.stderr)
    counts = snap.counts()
    print("  ".join(f"{k}: {counts[k]}" for k in ("done", "running", "pending", "failed", "missing") if k in counts))
    df = write_results(root)
    print(f"results: {root / 'results.csv'} ({(df['status'] == 'done').sum()} of {len(df)} done)")
    if bad or counts.get("missing"):
        import shlex

        last = next((j for j in reversed(snap.jobs) if j.get("sweep_file")), {"sweep_file": "SWEEP_FILE"})
        out = ["--output", last["output"]] if last.get("output") else []
        cmd = shlex.join(["goodhart", "sweep", last["sweep_file"], *last.get("overrides", []), *out, "--backend", "slurm", "--resume"])
        print(f"resubmit the failed and missing points with: {cmd}")
    if not snap.live and not counts.get("missing"):
        _close_parent(root, df, "FINISHED" if not bad else "FAILED")
    return 0


def _close_parent(root: Path, df, status: str) -> None:
    from pipeline import slurm as S
    from pipeline.io import read_json

    pj = root / S.PARENT
    if not pj.is_file():
        return
    from pipeline.cli import _log_sweep_artifacts
    from pipeline.run import TrackingTarget
    from pipeline.tracking import Tracker, _retry

    p = read_json(pj)
    try:
        target = TrackingTarget(Tracker(p["uri"]), p["experiment_id"], p["run_id"])
        run = _retry(lambda: target.tracker.client.get_run(p["run_id"]))
        if run.info.status != "RUNNING":
            return
        _log_sweep_artifacts(target, root, df)
        target.tracker.finish(p["run_id"], status)
        print(f"MLflow parent run {p['run_id']} closed as {status}")
    except Exception as e:  # tracking trouble must not hide the status table
        print(f"goodhart: warning: could not close the MLflow parent run: {type(e).__name__}: {e}", file=sys.stderr)
