"""`goodhart analyze SAMPLES`: any run's per-sample file (CSV, parquet, JSONL) through the same
verdicts, alarm, tails and report.html as a sweep (pipeline/report/analyze.py; the file's schema
in pipeline/report/samples.py and docs/integrations.md).

    goodhart analyze examples/samples/tiny_run.csv [--out DIR] [--base-id base] [--alpha A] [--share S]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from goodhart.pipeline.cli.argtypes import alarm_rule, alarm_rule_flags, fraction

BIG_FILE = 20 * 2**20  # bytes of samples file from which `analyze` says up front that it takes a while


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0  # missing or unreadable: read_samples says so in one line


def add_verbs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="any run's per-sample file through the same verdicts, alarm, tails and report")
    p.add_argument("samples", help="a .csv, .parquet or .jsonl file of per-sample rows (docs/integrations.md)")
    p.add_argument("--out", help="output directory (default: <samples stem>_analysis beside the file)")
    p.add_argument("--base-id", default="base", help="the `point` value of the base policy's rows (default: base)")
    p.add_argument(
        "--pairing",
        choices=["prompt", "global"],
        default="prompt",
        help="gains per prompt against that prompt's base rows (default), or against the base's overall mean "
        "(training logs, whose prompts are not the base's)",
    )
    p.add_argument(
        "--near-base", type=fraction, default=0.1, help="equivalence margin of the verdict rule (as `report`)"
    )
    p.add_argument(
        "--share-floor", type=fraction, default=0.05, help="collapsed-share threshold of the rule (as `report`)"
    )
    alarm_rule_flags(p)
    p.add_argument(
        "--holdout-combine",
        choices=["mean", "median"],
        default="mean",
        help="how several holdout_<name> columns combine per sample (median: independent draws on one scale)",
    )
    p.set_defaults(fn=cmd_analyze)


def cmd_analyze(args: argparse.Namespace) -> int:
    from goodhart.eval.goodhart import VerdictRule
    from goodhart.pipeline.report.alarm_tables import alarm_table
    from goodhart.pipeline.report.analyze import analyze
    from goodhart.pipeline.report.verdicts import verdict_table

    rule = VerdictRule(near_base=args.near_base, share_floor=args.share_floor)
    size = _size(Path(args.samples))
    if size > BIG_FILE:  # a million rows take a minute or two: say so before the work, not after
        print(
            f"goodhart: analyzing {args.samples} ({size / 2**20:.0f} MiB): a large file, this takes a while",
            file=sys.stderr,
        )
    out = Path(args.out) if args.out else None
    res = analyze(Path(args.samples), out, rule, args.base_id, args.pairing, alarm_rule(args), args.holdout_combine)
    if res.report is not None and res.report.estimate is not None:
        from goodhart.pipeline.report.holdout import holdout_text

        print(holdout_text(res.labelled, res.report.estimate) + "\n")
    if res.report is not None:
        print(verdict_table(res.labelled))
        print(f"\ngold-free alarm beside the verdicts (eval/alarm.py):\n{alarm_table(res.labelled)}\n")
        for g in res.report.groups:
            print(g.summary)
    else:
        if res.estimate is not None:
            from goodhart.pipeline.report.holdout import holdout_text

            print(holdout_text(res.labelled, res.estimate) + "\n")
        print(f"gold-free alarm (eval/alarm.py):\n{alarm_table(res.results)}")
    for curve, t in res.tails.items():
        print(f"\ntails of the base proxy ({curve}): {t if isinstance(t, str) else t.verdict}")
    if any(not isinstance(t, str) for t in res.tails.values()):  # both printed: say why they may differ
        from goodhart.pipeline.report.legend import TAILS_VS_ALARM

        print(f"\n{TAILS_VS_ALARM}")
    for note in res.notes + (res.report.notes if res.report is not None else []):
        print(f"\n{note}")
    if res.report is not None:
        print(f"\nverdict: {res.report.verdict}.  Report: {res.report.files[-1]}  (plots beside it)")
    else:
        print(f"\nReport: {res.out_dir / 'report' / 'report.md'}")
    return 0
