"""`goodhart alarm-eval SWEEP_DIR...`: score the gold-free Goodhart alarm against gold verdicts.

goodhart alarm-eval runs/distributional runs/demo [--dv-alarm 2] [--fire-on-watch] [--points]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from goodhart.pipeline.cli.argtypes import fraction, positive


def cmd_alarm_eval(args: argparse.Namespace) -> int:
    import pandas as pd

    from goodhart.eval.alarm import AlarmRule
    from goodhart.pipeline.report.alarm_eval import confusion, score_sweeps
    from goodhart.pipeline.sweeps.tables import render

    rule = AlarmRule(
        dv_alarm=args.dv_alarm, share_alarm=args.share_alarm, beyond_alarm=args.beyond_alarm, watch=args.watch
    )
    fire_on = ("watch", "alarm") if args.fire_on_watch else ("alarm",)
    res = score_sweeps([Path(d) for d in args.sweeps], rule, fire_on)
    s = res.summary()
    if args.points:
        cols = ["sweep", "error_law", "algo", "x_name", "x", "kl", "verdict", "level"]
        print(render(cols, res.points[cols].itertuples(index=False, name=None)), end="\n\n")
    print(render(list(res.groups.columns), res.groups.itertuples(index=False, name=None)), end="\n\n")
    print(confusion(res.points).to_string(), end="\n\n")
    print(
        f"{s['points']} points in {len(args.sweeps)} sweep(s): {s['positives']} gold over-optimized/catastrophic, "
        f"{s['improving']} improving, {s['baseline']} baseline; the alarm fires on level {' or '.join(fire_on)}\n"
        f"recall {s['recall']:.3f}   false-alarm rate {s['false_alarm_rate']:.3f}   precision {s['precision']:.3f}\n"
        f"groups whose gold turns: {s['groups_turning']}, alarm fired in {s['groups_caught']}; "
        f"lead before the gold turn: median {s['median_lead_nats']:.3g} nats, worst {s['min_lead_nats']:.3g}; "
        f"fired at or before the utility peak in {s['fired_by_peak']} of {s['groups']} groups"
    )
    if args.steps:
        from goodhart.pipeline.report.alarm_eval import trained_leads

        t = pd.concat([trained_leads(Path(d)) for d in args.sweeps], ignore_index=True)
        if t.empty:
            print("\n(no trained points with per-step MLflow logs)")
        else:
            print("\nonline alarm of trained runs (per-step logs): lead_steps > 0 = fired before the utility peak")
            print(render(list(t.columns), t.itertuples(index=False, name=None)))
    return 0


def add_verbs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alarm-eval", help="score the gold-free Goodhart alarm against gold verdicts of finished sweeps")
    p.add_argument("sweeps", nargs="+", help="finished sweep directories (each with results.csv)")
    p.add_argument("--dv-alarm", type=positive, default=2.0, help="gain / DV-bound ratio that fires (default 2)")
    p.add_argument(
        "--share-alarm", type=fraction, default=0.5, help="top-1%% share of the gain that fires (default 0.5)"
    )
    p.add_argument(
        "--beyond-alarm", type=fraction, default=0.05, help="mass beyond the base max that fires (default 0.05)"
    )
    p.add_argument("--watch", type=fraction, default=0.6, help="score from which the level is `watch` (default 0.6)")
    p.add_argument("--fire-on-watch", action="store_true", help="count `watch` as firing too")
    p.add_argument("--points", action="store_true", help="print every point's verdict and level")
    p.add_argument("--steps", action="store_true", help="trained points: online alarm vs the utility peak (MLflow)")
    p.set_defaults(fn=cmd_alarm_eval)
