"""Cluster verbs of the `goodhart` CLI (SLURM backend, tracking server). Kept apart from
cli/main.py so the cluster path reads on its own.

    goodhart sweep FILE --backend slurm [--resume] [--dry-run] [--partition P] [--time T] ...
    goodhart status SWEEP_DIR        (a SLURM sweep: queue + disk, failed points' logs)
    goodhart server [--port P] [--host H] [--backend-store-uri URI]
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from goodhart.pipeline.cli.argtypes import host_name, port_number

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
    "--accelerate-config": (
        "accelerate_config",
        str,
        "accelerate config (path or configs/accelerate/ name) each task launches under",
    ),
}


def add_verbs(sub: argparse._SubParsersAction) -> None:
    """Register cluster-only verbs and the SLURM options of `sweep` on the main parser."""
    sweep = sub.choices.get("sweep")
    if sweep is not None:
        g = sweep.add_argument_group("slurm (--backend slurm; flags override the sweep file's slurm: section)")
        for flag, (dest, typ, help_) in SLURM_FLAGS.items():
            g.add_argument(
                flag,
                dest=f"slurm_{dest}",
                type=typ,
                default=None,
                help=help_,
                metavar=flag.lstrip("-").upper().replace("-", "_"),
            )
        g.add_argument(
            "--sbatch-arg",
            dest="slurm_extra_args",
            action="append",
            default=[],
            metavar="--OPT[=VALUE]",
            help="an extra sbatch option, repeatable; write it as --sbatch-arg=--constraint=a100",
        )
        g.add_argument(
            "--allow-sqlite",
            dest="slurm_allow_sqlite",
            action="store_true",
            help="let tasks write a SQLite tracking store (one machine, local disk only)",
        )

    p = sub.add_parser("server", help="a lean MLflow tracking server (the tracking URI for SLURM sweeps)")
    p.add_argument(
        "--host",
        type=host_name,
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1; 0.0.0.0 for compute nodes)",
    )
    p.add_argument("--port", type=port_number, default=5000)
    p.add_argument("--backend-store-uri", default=None, help="database URI (default sqlite:///./mlflow.db)")
    p.add_argument("--artifacts-destination", default=None, help="where artifacts go (default ./mlartifacts)")
    p.add_argument(
        "--allowed-hosts",
        default=None,
        help="Host headers to accept (default: loopback, private IPs, this host's names)",
    )
    p.set_defaults(fn=cmd_server)


# ---------------------------------------------------------------------------------------------
def cmd_server(args: argparse.Namespace) -> int:
    from goodhart.pipeline.cluster.server import serve

    return serve(args.host, args.port, args.backend_store_uri, args.artifacts_destination, args.allowed_hosts)


# ---------------------------------------------------------------------------------------------
def _flags(args: argparse.Namespace) -> dict[str, Any]:
    out = {dest: getattr(args, f"slurm_{dest}", None) for dest, _, _ in SLURM_FLAGS.values()}
    out["extra_args"] = list(getattr(args, "slurm_extra_args", []) or [])
    out["allow_sqlite"] = bool(getattr(args, "slurm_allow_sqlite", False))
    return out


def sweep_slurm(args: argparse.Namespace, sweep, points: list, root: Path) -> int:
    """`goodhart sweep FILE --backend slurm`: submit one job array of the points still to run."""
    from goodhart.pipeline.cluster import submit as C

    p = C.plan(
        sweep,
        points,
        root,
        Path(args.file),
        _flags(args),
        resume=args.resume,
        overrides=list(args.overrides),
        dry_run=args.dry_run,
    )
    if not p.todo:
        n_live = len(p.live)
        print(
            f"nothing to submit: {len(points) - n_live} point(s) done"
            + (f", {n_live} queued or running" if n_live else "")
            + f".  `goodhart status {p.root}`"
        )
        return 0
    if args.dry_run:
        print(p.describe())
        print("# --dry-run: nothing written, nothing submitted")
        return 0
    from goodhart.pipeline.cluster.slurm import array_spec

    job, parent = C.submit(p)
    print(
        f"submitted job array {job}: {len(p.todo)} task(s), --array={array_spec(p.todo, p.settings.max_concurrent)}"
        + (
            f" (resume: {len(p.failed & set(p.todo))} failed, {len(set(p.todo) - p.failed)} missing)"
            if p.resume
            else ""
        )
    )
    print(f"  sweep dir: {p.root}")
    print(f"  logs:      {p.root / 'logs'}/{job}_<index>.out|.err")
    print(f"  watch:     {shlex.join(['goodhart', 'status', str(p.root)])}")
    if parent is not None:
        print(f"  MLflow:    experiment '{sweep.name}' at {p.uri} (parent run {parent.parent_id})")
    return 0


# ---------------------------------------------------------------------------------------------
def status_slurm(root: Path) -> int:
    """`goodhart status SWEEP_DIR` for a SLURM sweep: per point done / running / pending /
    failed / missing, failed ones with their error and log."""
    from goodhart.pipeline.cluster import slurm as S
    from goodhart.pipeline.cluster.submit import status
    from goodhart.pipeline.sweeps.tables import render

    st = status(root)
    snap = st.snapshot
    print(
        render(["#", "point", "status", "task", "slurm", "overrides", "detail"], S.status_rows(snap), align_left=(5, 6))
    )
    for p in snap.points:
        if p.status != "failed":
            continue
        print(f"FAILED #{p.index} {p.id} (task {p.task or '-'}): {p.detail or p.slurm}", file=sys.stderr)
        if p.logs:
            print(f"    log: {p.logs[1]}  (stdout: {p.logs[0]})", file=sys.stderr)
    counts = snap.counts()
    print(
        "  ".join(
            f"{k}: {counts[k]}" for k in ("done", "running", "pending", "failed", "missing", "unknown") if k in counts
        )
    )
    if snap.unknown:
        print(f"queue state unknown ({snap.unknown}): unfinished points may still be running", file=sys.stderr)
    df = st.results
    print(f"results: {root / 'results.csv'} ({(df['status'] == 'done').sum()} of {len(df)} done)")
    if st.resubmit:
        print(f"resubmit the failed and missing points with: {st.resubmit}")
    if st.closed:
        status_word = "FAILED" if any(p.status == "failed" for p in snap.points) else "FINISHED"
        print(f"MLflow parent run {st.closed} closed as {status_word}")
    return 0
