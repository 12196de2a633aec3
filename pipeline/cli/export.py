"""`goodhart export POINT_DIR OUT`: a trained point's policy as a plain Hugging Face model
directory (weights, tokenizer, a model card). The engine is goodhart.pipeline.train.export."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_export(args: argparse.Namespace) -> int:
    from goodhart.pipeline.train.export import export_policy

    ex = export_policy(Path(args.point_dir), Path(args.out), keep_adapter=args.keep_adapter, progress=not args.quiet)
    kind = "LoRA adapter (load with peft's AutoPeftModelForCausalLM)" if ex.adapter else "full weights"
    print(
        f"Exported {ex.checkpoint.name} (step {ex.step}) of {args.point_dir} to {ex.out}: {kind}, tokenizer, README.md"
    )
    return 0


def add_verbs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a trained point's policy as a Hugging Face model directory")
    p.add_argument("point_dir", help="a trained point's directory (SWEEP/points/<id>; see `goodhart status`)")
    p.add_argument("out", help="new output directory")
    p.add_argument(
        "--keep-adapter",
        action="store_true",
        help="LoRA points: write the adapter alone (default: merge it into the base weights)",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_export)
