"""`goodhart tails`: tail diagnostics (light / heavy, eval/tails.py) of a sample in a file, or of a
reward's error, proxy and utility under the base policy. Reading the file is
goodhart.pipeline.report.samples; this module parses and prints.

    goodhart tails FILE [--column C]
    goodhart tails --reward CONFIG [k=v ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from goodhart.pipeline.errors import UsageError


def _reward_samples(args: argparse.Namespace) -> dict:
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.config.load import load_config

    overrides = list(args.overrides)
    if args.file:  # argparse gives the first `key=value` to the optional FILE slot
        if "=" not in args.file:
            raise UsageError("give either a FILE or --reward CONFIG, not both")
        overrides.insert(0, args.file)
    pool = PointContext(load_config(args.reward, overrides), Path(".")).pool()
    return {"error (proxy - utility)": pool.error.ravel(), "proxy": pool.proxy.ravel(), "utility": pool.utility.ravel()}


def cmd_tails(args: argparse.Namespace) -> int:
    import numpy as np

    from goodhart.eval.tails import tail_verdict
    from goodhart.pipeline.base.pool import pool_memo
    from goodhart.pipeline.report.tail_input import read_column, tail_sample

    if args.reward:
        samples = _reward_samples(args)
    elif args.file:
        samples = {args.column or Path(args.file).name: read_column(Path(args.file), args.column)}
    else:
        raise UsageError("give a FILE (.npy/.npz/.csv/.parquet) or --reward CONFIG")
    for name, x in samples.items():
        x = tail_sample(name, x)
        print(f"== {name}: {x.size} samples")
        if np.unique(x).size < 20:
            print("  too few distinct values for tail estimation (a discrete or constant score)\n")
            continue
        try:
            # the Student-t reference depends on the sample's size only: kept on disk, a second
            # file of this size simulates nothing and imports no scipy (under 1 s of CPU in all)
            verdict = tail_verdict(x, memo=pool_memo)
        except ValueError as e:  # the estimators' own limits on the data (their messages say which)
            raise UsageError(f"{name}: {e}") from None
        print(verdict.table(), end="\n\n")
    return 0


def add_verbs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tails", help="tail diagnostics (light / heavy) of a sample or of a reward under the base policy"
    )
    p.add_argument("file", nargs="?", help=".npy, .npz, .csv or .parquet")
    p.add_argument("--column", help="column (csv/parquet) or array name (npz)")
    p.add_argument(
        "--reward", metavar="CONFIG", help="a run config: diagnose its error, proxy and utility on base samples"
    )
    p.add_argument("overrides", nargs="*", default=[], help="dotted overrides for --reward")
    p.set_defaults(fn=cmd_tails)
