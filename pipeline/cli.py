"""`goodhart`: one verb per job. User mistakes exit 2 with one line; nothing else is hidden.

    goodhart prepare                         build (or find) the built-in tiny model
    goodhart config show [FILE] [k=v ...]    print the resolved config
    goodhart run CONFIG [k=v ...]            run one point
    goodhart sweep FILE [k=v ...] [--jobs K] [--dry-run]
    goodhart status SWEEP_DIR                per-point pending / done / failed
    goodhart ui [--port P]                   the MLflow UI on 127.0.0.1
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

USER_ERRORS: tuple[type[BaseException], ...] = ()


def _user_errors() -> tuple[type[BaseException], ...]:
    from pipeline.config_load import ConfigError
    from pipeline.prompts import PromptError
    from rewards.base import RewardError

    return (ConfigError, PromptError, RewardError, FileNotFoundError)


class UsageError(Exception):
    """A bad command line (beyond argparse's own checks)."""


# ---------------------------------------------------------------------------------------------
def cmd_prepare(args: argparse.Namespace) -> int:
    import time

    from pipeline.tiny_model import TinyRecipe, ensure_tiny_model

    t0 = time.time()
    path = ensure_tiny_model(progress=not args.quiet)
    print(f"tiny model ({TinyRecipe().recipe_hash()}) ready at {path}  [{time.time() - t0:.1f} s]")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from pipeline.config_load import load_config, to_yaml

    file, overrides = args.file, list(args.overrides)
    if file and "=" in file and not Path(file).exists():  # `config show key=value ...`: no file
        file, overrides = None, [file, *overrides]
    cfg = load_config(file, overrides)
    print(to_yaml(cfg), end="")
    return 0


def _run_sweep(sweep, base_tree, points, root: Path, jobs: int, progress: bool, sweep_file: Path | None) -> int:
    from pipeline.local import run_local, start_parent
    from pipeline.sweep import write_results, write_sweep_dir
    from pipeline.tables import sweep_tables

    write_sweep_dir(root, sweep_file, sweep, points)
    target = start_parent(sweep, points, root)
    summary = {"failed": {}}
    status = "FAILED"
    try:
        summary = run_local(sweep, points, root, jobs, progress, target)
        status = "FINISHED" if not summary["failed"] else "FAILED"
    finally:
        df = write_results(root)
        if target is not None:
            _log_sweep_artifacts(target, root, df)
            target.tracker.finish(target.parent_id, status if summary is not None else "KILLED")
    print(sweep_tables(df))
    print(
        f"\n{len(points)} point(s): {summary.get('done', 0)} run, {summary.get('skipped', 0)} already done, "
        f"{len(summary['failed'])} failed.  Results: {root / 'results.csv'}"
    )
    if target is not None:
        print(f"MLflow: experiment '{sweep.name}' at {target.tracker.uri} (parent run {target.parent_id}); `goodhart ui` to browse")
    for pid, msg in summary["failed"].items():
        print(f"FAILED {pid}: {msg}  (details: {root / 'points' / pid / 'error.json'})", file=sys.stderr)
    return 1 if summary["failed"] else 0


def _log_sweep_artifacts(target, root: Path, df) -> None:
    from pipeline.tables import sweep_tables

    (root / "tables.txt").write_text(sweep_tables(df) + "\n")
    for name in ("results.csv", "tables.txt", "sweep.yaml", "points.json"):
        if (root / name).is_file():
            target.tracker.log_artifact(target.parent_id, root / name)


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.config_load import load_config
    from pipeline.run import point_id
    from pipeline.sweep import Point, SweepConfig

    cfg = load_config(args.config, args.overrides)
    sweep = SweepConfig(name=cfg.name)
    point = Point(0, point_id(cfg), dict(o.split("=", 1) for o in args.overrides), cfg)
    root = Path(cfg.output_dir) / cfg.name
    return _run_sweep(sweep, None, [point], root, 1, not args.quiet, None)


def cmd_sweep(args: argparse.Namespace) -> int:
    from pipeline.sweep import expand, load_sweep

    sweep, base = load_sweep(args.file)
    points = expand(sweep, base, args.overrides)
    root = Path(args.output or points[0].cfg.output_dir) / sweep.name
    if args.dry_run:
        for p in points:
            print(f"{p.index:4d}  {p.id}  " + " ".join(f"{k}={v}" for k, v in p.overrides.items()))
        print(f"{len(points)} point(s) -> {root}")
        return 0
    jobs = args.jobs or sweep.jobs
    return _run_sweep(sweep, base, points, root, jobs, not args.quiet, Path(args.file))


def cmd_status(args: argparse.Namespace) -> int:
    from pipeline.io import read_json
    from pipeline.sweep import point_status
    from pipeline.tables import render

    root = Path(args.sweep)
    if not (root / "points.json").is_file():
        raise FileNotFoundError(f"{root} is not a sweep directory (no points.json)")
    rows, counts = [], {}
    for e in read_json(root / "points.json"):
        st = point_status(root, e["id"])
        counts[st] = counts.get(st, 0) + 1
        detail = ""
        if st == "failed":
            detail = read_json(root / "points" / e["id"] / "error.json").get("error", "")[:80]
        rows.append([e["index"], e["id"], st, " ".join(f"{k}={v}" for k, v in e["overrides"].items())[:60], detail])
    print(render(["#", "point", "status", "overrides", "error"], rows))
    print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from pipeline.tracking import resolve_uri

    uri = args.uri or resolve_uri()
    cmd = ["mlflow", "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)]
    print(f"MLflow UI for {uri} on http://{args.host}:{args.port}  (Ctrl-C to stop)")
    os.execvp(cmd[0], cmd)
    return 0


# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="goodhart", description="Stress-test KL regularization: proxy vs utility vs KL.")
    sub = ap.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("prepare", help="build (or find) the built-in tiny model")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_prepare)

    p = sub.add_parser("config", help="inspect configs")
    csub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    s = csub.add_parser("show", help="print the resolved config tree")
    s.add_argument("file", nargs="?", help="a run config YAML (default: built-in defaults)")
    s.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    s.set_defaults(fn=cmd_config_show)

    p = sub.add_parser("run", help="run one point")
    p.add_argument("config", help="a run config YAML")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("sweep", help="expand and run a sweep")
    p.add_argument("file", help="a sweep YAML (configs/sweep/)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides applied to every point")
    p.add_argument("--jobs", type=int, default=None, help="local worker processes (threads are pinned)")
    p.add_argument("--backend", choices=["local"], default="local")
    p.add_argument("--dry-run", action="store_true", help="list the points; run nothing")
    p.add_argument("--output", help="parent directory of the sweep directory (default: the config's output_dir)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("status", help="per-point status of a sweep directory")
    p.add_argument("sweep", help="sweep directory (e.g. runs/demo)")
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("ui", help="the MLflow UI on loopback")
    p.add_argument("--uri", help="tracking store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(fn=cmd_ui)
    return ap


def main(argv: list[str] | None = None) -> int:
    # Offline by default: no telemetry pings from HF or MLflow.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    # Overrides may come after options (`sweep FILE --jobs 2 algo.beta=1`): argparse leaves
    # those as unknown; take the key=value ones as overrides, reject anything else.
    args, extra = parser.parse_known_args(argv)
    bad = [x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "overrides")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    try:
        return args.fn(args)
    except _user_errors() as e:
        print(f"goodhart: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("goodhart: interrupted; finished points are kept, re-run to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
