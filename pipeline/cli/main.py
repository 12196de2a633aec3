"""`goodhart`: one verb per job. User mistakes exit 2 with one line; nothing else is hidden.

goodhart prepare                         build (or find) the built-in tiny model
goodhart config show [FILE] [k=v ...]    print the resolved config
goodhart run CONFIG [k=v ...]            run one point
goodhart sweep FILE [k=v ...] [--jobs K] [--dry-run]
goodhart status SWEEP_DIR [--check-rewards]  per-point pending / done / stale / failed
goodhart ui [--port P]                   the MLflow UI on 127.0.0.1
goodhart train-rm [CONFIG] [k=v ...]     train a learned proxy reward model (cli/train_rm.py)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from goodhart.pipeline.cli.argtypes import finite, fraction, host_name, port_number, positive_int
from goodhart.pipeline.errors import USER_ERRORS, UsageError, os_error_line

# Verb groups that live in their own module of this room: each defines add_verbs(subparsers).
VERB_MODULES = ("tails", "cluster", "probe", "alarm", "export", "train_rm", "analyze", "holdout")


# ---------------------------------------------------------------------------------------------
def cmd_prepare(args: argparse.Namespace) -> int:
    import time

    from goodhart.pipeline.base.tiny_model import TinyRecipe, ensure_tiny_model

    t0 = time.time()
    path = ensure_tiny_model(progress=not args.quiet)
    print(f"tiny model ({TinyRecipe().recipe_hash()}) ready at {path}  [{time.time() - t0:.1f} s]")
    from goodhart.pipeline.sweeps.sqlite_store import store_template

    t0 = time.time()
    tpl = store_template()  # every new SQLite store is a copy of it (MLflow's own creation: ~50 migrations)
    if tpl is not None:
        print(f"empty MLflow store ready at {tpl}  [{time.time() - t0:.1f} s]")
    return 0


def _is_file(text: str) -> bool:
    try:
        return Path(text).exists()
    except OSError:  # ENAMETOOLONG: an override value longer than any file name
        return False


def cmd_config_show(args: argparse.Namespace) -> int:
    from goodhart.pipeline.config.load import load_config, shown_yaml

    file, overrides = args.file, list(args.overrides)
    if file and "=" in file and not _is_file(file):  # `config show key=value ...`: no file
        file, overrides = None, [file, *overrides]
    cfg = load_config(file, overrides)
    print(shown_yaml(cfg), end="")
    return 0


def _run_sweep(
    sweep, points, root: Path, jobs: int, progress: bool, sweep_file: Path | None, partial: bool = False
) -> int:
    from goodhart.pipeline.sweeps.invoke import run_sweep
    from goodhart.pipeline.sweeps.tables import sweep_tables

    def resolve(out) -> None:  # eval.resolve: rounds until the verdicts resolve or the budget is spent
        from goodhart.pipeline.report.resolve import resolve_rounds

        out.resolved = resolve_rounds(sweep, points, root, jobs, progress, out.parent)
        if out.resolved is not None:
            out.failed.update(out.resolved.failed)

    rc = points[0].cfg.eval.resolve
    then = resolve if rc.budget > 0 or rc.draws > 0 else None
    out = run_sweep(sweep, points, root, jobs, progress, sweep_file, keep_finished=partial, then=then)
    if out.results is None:  # a rank > 0 of `accelerate launch`: rank 0 reports
        return 0
    from goodhart.pipeline.report.verdicts import apply_record, verdict_summary

    print(sweep_tables(apply_record(out.results, root)))  # after resolve rounds: the last look of each curve
    print(verdict_summary(root))
    print(
        f"\n{len(points)} point(s): {out.ran} run, {out.skipped} already done, {len(out.failed)} failed.  "
        f"Results: {root / 'results.csv'}"
    )
    if out.parent is not None:
        print(
            f"MLflow: experiment '{sweep.name}' at {out.parent.tracker.uri} (parent run {out.parent.parent_id}); "
            "`goodhart ui` to browse"
        )
    for pid, msg in out.failed.items():
        print(f"FAILED {pid}: {msg}  (details: {root / 'points' / pid / 'error.json'})", file=sys.stderr)
    return 0 if out.ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.sweeps.point import point_id
    from goodhart.pipeline.sweeps.spec import Point, SweepConfig

    cfg = load_config(args.config, args.overrides)
    sweep = SweepConfig(name=cfg.name)
    point = Point(0, point_id(cfg), dict(o.split("=", 1) for o in args.overrides), cfg)
    root = Path(cfg.output_dir) / cfg.name
    return _run_sweep(sweep, [point], root, 1, not args.quiet, None)


def cmd_sweep(args: argparse.Namespace) -> int:
    from goodhart.pipeline.sweeps.spec import expand_selected, load_sweep

    sweep, base = load_sweep(args.file, quick=args.quick)
    sel = expand_selected(sweep, base, args.overrides, args.only, args.branch)
    points = sel.points
    for note in sel.notices:
        print(f"goodhart: note: {note}", file=sys.stderr)
    if sel.partial:
        print(f"goodhart: running {len(points)} of the sweep's {sel.total} points", file=sys.stderr)
    root = Path(args.output or points[0].cfg.output_dir) / sweep.name
    if args.backend == "slurm":
        from goodhart.pipeline.cli.cluster import sweep_slurm

        return sweep_slurm(args, sweep, points, root)
    if args.dry_run:
        for p in points:
            print(f"{p.index:4d}  {p.id}  " + " ".join(f"{k}={v}" for k, v in p.overrides.items()))
        print(f"{len(points)} point(s) -> {root}")
        return 0
    jobs = args.jobs or sweep.jobs
    return _run_sweep(sweep, points, root, jobs, not args.quiet, Path(args.file), sel.partial)


def cmd_status(args: argparse.Namespace) -> int:
    from goodhart.pipeline.sweeps.record import point_status, read_points, status_detail
    from goodhart.pipeline.sweeps.tables import render

    root = Path(args.sweep)
    entries = read_points(root)  # one line on a torn or foreign points.json
    if (root / "slurm_jobs.json").is_file():
        from goodhart.pipeline.cli.cluster import status_slurm

        rc = status_slurm(root)
        checks = _reward_checks(root, [e["id"] for e in entries], args.check_rewards)
        for pid, why in {**checks["stale"], **checks["alarm"]}.items():
            print(f"stale {pid}: {why}")
        _print_reward_summary(root, checks)
        return rc
    from goodhart.pipeline.sweeps.labels import distinguishing_overrides
    from goodhart.pipeline.sweeps.point import running_state

    states = {e["id"]: point_status(root, e["id"]) for e in entries}
    checks = _reward_checks(root, [pid for pid, st in states.items() if st == "done"], args.check_rewards)
    rows, counts = [], {}
    for e, ov in zip(entries, distinguishing_overrides([e["overrides"] for e in entries])):
        st = states[e["id"]]
        detail = status_detail(root, e["id"])[:80]
        if e["id"] in checks["stale"] or e["id"] in checks["alarm"]:
            st, detail = "stale", (checks["stale"].get(e["id"]) or checks["alarm"][e["id"]])[:80]
        elif e["id"] in checks["unloadable"]:
            detail = checks["unloadable"][e["id"]][:80]
        counts[st] = counts.get(st, 0) + 1
        run = running_state(root / "points" / e["id"])
        if not detail and run is not None and st not in ("done", "stale"):
            detail = run[1] if st == "running" else f"stale running.json: {run[1]}"
        rows.append([e["index"], e["id"], st, ov, detail])  # overrides in full: they tell the points apart
    headers = ["#", "point", "status", "overrides (distinguishing)", "detail"]
    print(render(headers, rows, align_left=(3, 4)))
    print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    _print_reward_summary(root, checks)
    return 0


def _reward_checks(root: Path, done: list[str], full: bool) -> dict[str, dict]:
    """Has the reward of each done point changed since it ran? Cheaply (no user code, no large
    file) unless `full` (--check-rewards), which imports callables and plug-ins as the sweep
    does. {"stale": {pid: why}, "alarm": {pid: why} (an older alarm rule's alarm), "unloadable":
    {pid: why}, "unchecked": {what: how many}}."""
    from goodhart.pipeline.sweeps.record import reward_check

    out: dict[str, dict] = {"stale": {}, "alarm": {}, "unloadable": {}, "unchecked": {}}
    for pid in done:
        check = reward_check(root, pid, full=full)
        if check is None:
            continue
        kind, why = check
        if kind == "unchecked":
            out["unchecked"][why] = out["unchecked"].get(why, 0) + 1
        else:
            out[kind if kind in ("stale", "alarm") else "unloadable"][pid] = why
    return out


def _print_reward_summary(root: Path, checks: dict[str, dict]) -> None:
    from goodhart.pipeline.report.rules import RULES_DOC, rules_line

    print(f"rules: {rules_line()} ({RULES_DOC})")
    if checks["alarm"]:
        print(
            f"stale (alarm rule changed): {len(checks['alarm'])} finished point(s) carry an alarm computed under "
            "an older alarm rule; `goodhart sweep` on the sweep file recomputes them (the old results are kept as *.stale)"
        )
    if checks["stale"]:
        print(
            f"stale (reward changed): {len(checks['stale'])} finished point(s) were scored by a reward that has "
            "changed since; `goodhart sweep` on the sweep file recomputes them (the old results are kept as *.stale)"
        )
    if checks["unloadable"]:
        print(
            f"{len(checks['unloadable'])} finished point(s) have a reward that does not load now (see detail); "
            "`goodhart sweep` refuses it"
        )
    if checks["unchecked"]:
        names = sorted(checks["unchecked"])
        what = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        print(
            f"note: {sum(checks['unchecked'].values())} finished point(s) are scored by {what}, which `status` does "
            f"not import or hash; `goodhart status {root} --check-rewards` checks whether it changed since they ran"
        )


def cmd_report(args: argparse.Namespace) -> int:
    from goodhart.eval import metrics as M
    from goodhart.eval.goodhart import VerdictRule
    from goodhart.pipeline.io import check_writable_dir
    from goodhart.pipeline.probe.report import is_probe_dir
    from goodhart.pipeline.report.verdicts import (
        build_report,
        check_parent_store,
        locate_sweep,
        log_to_mlflow,
        verdict_table,
    )

    if is_probe_dir(Path(args.sweep)):  # `goodhart probe` wrote it: the probe's own report
        from goodhart.pipeline.cli.probe import cmd_probe_report

        return cmd_probe_report(args)
    root = locate_sweep(args.sweep)
    check_writable_dir(Path(args.out) if args.out else root / "report", "report --out")
    if not args.no_mlflow:
        check_parent_store(root)  # a dead or locked store: one line before the work
    rule = VerdictRule(near_base=args.near_base, share_floor=args.share_floor, min_proxy_gain=args.min_proxy_gain)
    rep = build_report(root, rule, Path(args.out) if args.out else None)
    if rep.estimate is not None:  # a held-out proxy: its estimate first (report/holdout.py)
        from goodhart.pipeline.report.holdout import holdout_text

        print(holdout_text(rep.labelled, rep.estimate) + "\n")
    if rep.arena_only:  # a matched-KL arena: its matrix is the report (every point in verdicts.csv)
        print(f"Arena (pipeline/report/arena.py):\n{rep.arena.table}")
        run_id = None if args.no_mlflow else log_to_mlflow(rep)
        if not rep.coverage.complete:
            print(f"\n{rep.coverage.text(root)}")
        _warn_stale(root)
        print(f"\nsweep verdict: {rep.verdict}.  Report: {rep.files[-1]}  (heat map and tables beside it)")
        return 0
    print(verdict_table(rep.labelled))
    print()
    from goodhart.pipeline.report.alarm_tables import alarm_table

    print(f"gold-free alarm beside the verdicts (eval/alarm.py):\n{alarm_table(rep.labelled)}\n")
    for g in rep.groups:
        print(g.summary)
    shown = [t for t in rep.tails if "skipped" not in t]
    for t in shown:
        print(f"\ntails of the error {t['error_law']} under the base policy: {t['error'].verdict}")
    if shown and M.ALARM_TAIL_P in rep.labelled:  # both printed: say why they may differ
        from goodhart.pipeline.report.legend import TAILS_VS_ALARM

        print(f"\n{TAILS_VS_ALARM}")
    for note in rep.notes:
        print(f"\n{note}")
    if rep.arena is not None:  # the arena matrix, heat map beside the report
        print(f"\nArena (pipeline/report/arena.py):\n{rep.arena.table}")
    run_id = None if args.no_mlflow else log_to_mlflow(rep)
    if not rep.coverage.complete:  # report/coverage.py: which points the verdict does not cover
        print(f"\n{rep.coverage.text(root)}")
    _warn_stale(root)
    print(f"\nsweep verdict: {rep.verdict}, under {rep.rules}.  Report: {rep.files[-1]}  (plots beside it)")
    if run_id:
        print(f"Logged to MLflow parent run {run_id} (artifacts under report/, tag goodhart.verdict={rep.verdict})")
    return 0


def _warn_stale(root: Path) -> None:
    """A report over points whose reward changed since they ran shows the old reward's numbers:
    say so (the cheap check of `status`: no user code imported, no large file hashed)."""
    points = root / "points"
    done = sorted(p.name for p in points.iterdir() if (p / "result.json").is_file()) if points.is_dir() else []
    checks = _reward_checks(root, done, full=False)
    if checks["alarm"]:
        print(
            f"\nwarning: {len(checks['alarm'])} point(s) in this report carry an alarm computed under an older "
            f"alarm rule: their alarm levels are not the current rule's. `goodhart status {root}` lists them; "
            "`goodhart sweep` on the sweep file recomputes them"
        )
    if checks["stale"]:
        print(
            f"\nwarning: {len(checks['stale'])} point(s) in this report were scored by a reward that has changed "
            f"since they ran: their numbers are the old reward's. `goodhart status {root}` lists them; `goodhart "
            "sweep` on the sweep file recomputes them"
        )
    if checks["unchecked"]:
        print(
            f"\nnote: {sum(checks['unchecked'].values())} point(s) are scored by user code or a large checkpoint "
            f"the report does not check; `goodhart status {root} --check-rewards` says whether it changed"
        )


def cmd_run_point(args: argparse.Namespace) -> int:
    """Run point INDEX of a written sweep directory (what each SLURM array task does)."""
    from goodhart.pipeline.config.load import read_yaml, validate
    from goodhart.pipeline.config.schema import RunConfig
    from goodhart.pipeline.io import read_json
    from goodhart.pipeline.sweeps.point import TrackingTarget, run_point
    from goodhart.pipeline.sweeps.record import read_points
    from goodhart.pipeline.sweeps.tracking import Tracker

    root = Path(args.sweep_dir)
    entries = read_points(root)
    if not 0 <= args.index < len(entries):
        raise UsageError(f"index {args.index} is out of range: {root} has points 0..{len(entries) - 1}")
    pdir = root / "points" / entries[args.index]["id"]
    cfg = validate(read_yaml(pdir / "config.yaml"), RunConfig, source=str(pdir / "config.yaml"))
    target = None
    parent = read_json(root / "parent.json") if (root / "parent.json").is_file() else None
    if cfg.tracking.enabled and parent:
        from goodhart.pipeline.sweeps.tracking import check_store

        check_store(parent["uri"])  # a task must not hang on a dead server: one line, then exit 2
        target = TrackingTarget(Tracker(parent["uri"]), parent["experiment_id"], parent["run_id"])
    row = run_point(cfg, pdir, target, progress=not args.quiet)
    print(f"point {args.index} ({row['point_id']}): {row['status']}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """The MLflow UI for this store: the same lean loopback server as `goodhart server`."""
    from goodhart.pipeline.cluster.server import serve
    from goodhart.pipeline.sweeps.tracking import resolve_uri

    return serve(args.host, args.port, args.uri or resolve_uri())


# ---------------------------------------------------------------------------------------------
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("goodhart")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="goodhart", description="Stress-test KL regularization: proxy vs utility vs KL.")
    ap.add_argument("--version", action="version", version=f"goodhart {_version()}")
    sub = ap.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("prepare", help="build (or find) the built-in tiny model and the empty MLflow store")
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
    p.add_argument("--jobs", type=positive_int, default=None, help="local worker processes (threads are pinned)")
    p.add_argument(
        "--backend", choices=["local", "slurm"], default="local", help="local processes, or one SLURM job array"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="slurm: submit only the missing and failed points (local sweeps always resume)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the points; run nothing")
    p.add_argument(
        "--only",
        action="append",
        metavar="KEY=VALUE",
        help="run only points whose resolved config has KEY=VALUE (e.g. algo=bon); repeatable, all must hold",
    )
    p.add_argument(
        "--branch",
        action="append",
        metavar="NAME_OR_INDEX",
        help="run only this branch of the sweep file: its `name`, its `set: {algo: ...}`, or its index (0 = first)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="run the sweep file's `quick:` variant (fewer laws, seeds or pool sizes; its own name and directory)",
    )
    p.add_argument("--output", help="parent directory of the sweep directory (default: the config's output_dir)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("status", help="per-point status of a sweep directory")
    p.add_argument("sweep", help="sweep directory (e.g. runs/demo)")
    p.add_argument(
        "--check-rewards",
        action="store_true",
        help="also check finished points scored by a callable, a plug-in or a large checkpoint: imports and hashes "
        "them (as `goodhart sweep` does) and marks the points whose reward changed since they ran `stale`",
    )
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("report", help="verdicts, fits, tail diagnostics, plots and a markdown report")
    p.add_argument("sweep", help="a sweep directory, or an MLflow experiment name")
    p.add_argument("--out", help="output directory (default SWEEP/report)")
    p.add_argument(
        "--near-base",
        type=fraction,
        default=0.1,
        help="equivalence margin: a utility gain whose upper bound is below this fraction of max(the curve's peak gain, "
        "best-of-2's gain on the base pool) is back at base (default 0.1)",
    )
    p.add_argument(
        "--share-floor",
        type=fraction,
        default=0.05,
        help="a utility share of the proxy gain below this fraction of best-of-2's has collapsed: evidence in `why`, "
        "not a label on its own (default 0.05)",
    )
    p.add_argument(
        "--min-proxy-gain", type=finite, default=0.0, help="proxy gain at or below this is 'nothing optimized'"
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not log the report to the sweep's parent run")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("run-point", help="run point INDEX of a sweep directory (one SLURM array task)")
    p.add_argument("sweep_dir")
    p.add_argument("index", type=int)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_run_point)

    p = sub.add_parser("ui", help="the MLflow UI on loopback")
    p.add_argument("--uri", help="tracking store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--host", type=host_name, default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=5000)
    p.set_defaults(fn=cmd_ui)
    import importlib

    for name in VERB_MODULES:  # each adds its verbs (and options of existing ones) to the parser
        importlib.import_module(f"goodhart.pipeline.cli.{name}").add_verbs(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    # Offline by default: no telemetry pings from HF or MLflow.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not Path("/dev/nvidia0").exists():  # DeepSpeed (imported by accelerate) would warn it fell back to CPU
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # OpenMP threads sleep between parallel regions instead of spinning on cores the neighbours
    # need (read when torch loads; benchmarks/bench_threads.py measures it). pipeline/base/threads.py
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    # Overrides may come after options (`sweep FILE --jobs 2 algo.kl.coef=1`): argparse leaves
    # those as unknown; take the key=value ones as overrides, reject anything else.
    args, extra = parser.parse_known_args(argv)
    bad = [x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "overrides")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    try:
        return args.fn(args)
    except USER_ERRORS as e:
        print(f"goodhart: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only directory, a full disk, a file where a directory goes
        line = os_error_line(e)
        if line is None:
            raise
        print(f"goodhart: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("goodhart: interrupted; finished points are kept, re-run to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
