"""`goodhart holdout-eval SWEEP` and `goodhart holdout-bench`: the held-out estimate (eval.holdout,
docs/holdout.md) scored against exact truth, on any finished distributional sweep or on the
bench's dev and test families (configs/sweep/holdout_dev.yaml, holdout_test.yaml).

    goodhart holdout-eval runs/my_sweep [--csv points.csv]
    goodhart holdout-bench [--half dev|test] [--out runs] [--csv points.csv] [key=value ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_verbs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("holdout-eval", help="score a finished sweep's held-out estimate against exact truth")
    p.add_argument("sweep", help="a finished distributional sweep directory run with eval.holdout")
    p.add_argument("--csv", help="write every scored point (exact gain, both labels) to this CSV")
    p.set_defaults(fn=cmd_holdout_eval)
    p = sub.add_parser("holdout-bench", help="the held-out estimate on its dev / test families against exact truth")
    p.add_argument("--half", choices=["dev", "test"], default="dev", help="which families (default: dev)")
    p.add_argument("--out", default="runs", help="where the families' sweeps run (default: runs/)")
    p.add_argument("--file", help="another sweep file as the families (one family per branch)")
    p.add_argument("--csv", help="write every scored point with its family to this CSV")
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--coverage",
        type=int,
        metavar="SEEDS",
        help="instead: the held-out interval's coverage of the exact best-of-n gain over SEEDS pools per dev "
        "error law, for k = 1, 3, 5, 9 (median) and 5 (mean): how the default k was chosen",
    )
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides for every point (e.g. eval.holdout.k=5)")
    p.set_defaults(fn=cmd_holdout_bench)


def cmd_holdout_eval(args: argparse.Namespace) -> int:
    from goodhart.pipeline.report.holdout_bench import families, table, worst

    scores = families(Path(args.sweep))
    print(table(scores))
    print(worst(scores))
    _notes(scores)
    _csv(args.csv, scores)
    return 0


def cmd_holdout_bench(args: argparse.Namespace) -> int:
    import datetime

    from goodhart.eval.goodhart import VERSION
    from goodhart.pipeline.report.holdout_bench import families, run_half, table, worst

    if args.coverage is not None:
        return _coverage(args.coverage)
    root, family = run_half(
        args.half, Path(args.out), args.overrides, not args.quiet, Path(args.file) if args.file else None
    )
    scores = families(root, family)
    print(f"holdout-bench {args.half} half ({root}), verdict rule {VERSION}, {datetime.date.today().isoformat()}")
    print(table(scores))
    print(worst(scores))
    _notes(scores)
    _csv(args.csv, scores)
    return 0


def _notes(scores) -> None:
    for note in next((f.score.left_out for f in scores if f.family == "all"), []):
        print(f"note: {note}")


def _csv(path: str | None, scores) -> None:
    if path:
        from goodhart.pipeline.report.holdout_bench import points_frame

        points_frame(scores).to_csv(path, index=False)
        print(f"points: {path}")


def _coverage(seeds: int) -> int:
    from goodhart.pipeline.errors import UsageError
    from goodhart.pipeline.report.holdout_bench import coverage

    if seeds < 2:
        raise UsageError("holdout-bench --coverage: expected SEEDS >= 2")
    df = coverage(seeds)
    cov = df.pivot_table(index=["error", "k", "combine"], columns="n", values="coverage", sort=False)
    wid = df.pivot_table(index=["error", "k", "combine"], columns="n", values="width", sort=False)
    print(f"held-out 95% interval coverage of the exact best-of-n gain, {seeds} pools of 16 x 2048 per law:")
    print(cov.round(2).to_string())
    print("\nmean interval width:")
    print(wid.map(lambda v: f"{v:.3g}").to_string())
    return 0
