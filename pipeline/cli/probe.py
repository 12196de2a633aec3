"""`goodhart probe`: how far a reward model's tail reaches.

    goodhart probe RUN_CONFIG --mode random|base|optimize [--probe-config NAME] [key=value ...]

RUN_CONFIG names the reward (`reward:`), the base model and its sampling, like any run config;
`probe.<key>=value` overrides go to the probe config (configs/probe/default.yaml, documented in
pipeline/probe/config.py), all others to the run config. Every mode writes into one probe
directory; `goodhart report PROBE_DIR` puts them side by side (cli/main.py's `report` sends a
probe directory to cmd_probe_report here, a sweep directory to the sweep report).
"""

from __future__ import annotations

import argparse
from pathlib import Path

PREFIX = "probe."


def add_verbs(sub: argparse._SubParsersAction) -> None:
    from goodhart.pipeline.probe import MODES

    p = sub.add_parser("probe", help="reward-model tail probe: random tokens, base completions, ACG optimization")
    p.add_argument("config", help="a run config naming the reward (and the base model for base/optimize)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides; probe.<key>=... for the probe config")
    p.add_argument("--mode", choices=MODES, required=True, help="random tokens, base completions, or ACG search")
    p.add_argument(
        "--probe-config", default=None, help="probe defaults: a file, or a name in configs/probe/ (default: default)"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.probe.config import load_probe_config
    from goodhart.pipeline.probe.engine import log_probe, run_probe

    run_over = [o for o in args.overrides if not o.startswith(PREFIX)]
    probe_over = [o[len(PREFIX) :] for o in args.overrides if o.startswith(PREFIX)]
    if not any(o.startswith("utility=") or o.startswith("utility.") for o in run_over):
        # The probe reads the reward alone: a plug-in reward needs no utility here.
        run_over = [*run_over, "utility=same"]
    cfg = load_config(args.config, run_over)
    pcfg = load_probe_config(args.probe_config, probe_over)
    from goodhart.pipeline.io import check_writable_dir
    from goodhart.pipeline.probe.run import probe_dir

    check_writable_dir(probe_dir(cfg, pcfg), "probe.dir")  # before any sampling
    result = run_probe(args.mode, cfg, pcfg, progress=not args.quiet)
    print(result.text)
    print(f"\nSaved under {result.dir} ({', '.join(f.name for f in result.files)}); `goodhart report {result.dir}`")
    if cfg.tracking.enabled:
        from goodhart.pipeline.sweeps.tracking import Tracker, flatten, resolve_uri

        tracker = Tracker(resolve_uri(cfg.tracking))
        experiment = cfg.tracking.experiment or "probe"
        params = flatten(
            {
                "mode": args.mode,
                "reward": cfg.reward.model_dump(mode="json"),
                "model": cfg.model.model_dump(mode="json"),
                "sampling": cfg.sampling.model_dump(mode="json"),
                "seed": cfg.seed,
                "probe": pcfg.model_dump(mode="json"),
            }
        )
        run_id = log_probe(tracker, experiment, result, params)
        print(f"MLflow: experiment '{experiment}' at {tracker.uri} (run {run_id}); `goodhart ui` to browse")
    return 0


def cmd_probe_report(args: argparse.Namespace) -> int:
    from goodhart.pipeline.probe.report import probe_report

    root = Path(args.sweep)
    rep = probe_report(root, Path(args.out) if args.out else None)
    print(rep.text)
    print(f"\nReport: {rep.files[-1]}  (plots beside it)")
    return 0
