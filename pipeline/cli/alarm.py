"""`goodhart alarm-eval SWEEP_DIR...`: score the gold-free Goodhart alarm against gold verdicts.
`goodhart alarm-bench`: the alarm on procedurally drawn sweeps, dev half and test half.

goodhart alarm-eval runs/distributional runs/demo [--alpha 0.05] [--share S] [--fire-on-watch] [--points]
goodhart alarm-bench [--quick] [--seeds 200] [--half test] [--utility gaussian|vader] [--csv points.csv]
goodhart alarm-bench --family dev|test|all|NAME[,NAME] [--seeds K] [--csv points.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from goodhart.pipeline.cli.argtypes import alarm_rule, alarm_rule_flags


def cmd_alarm_eval(args: argparse.Namespace) -> int:
    import pandas as pd

    from goodhart.pipeline.report.alarm_eval import confusion, score_sweeps
    from goodhart.pipeline.sweeps.tables import render

    rule = alarm_rule(args)
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
    _note_old_evidence(res.points)
    if args.steps:
        from goodhart.pipeline.report.alarm_eval import trained_leads

        t = pd.concat([trained_leads(Path(d), rule=rule) for d in args.sweeps], ignore_index=True)
        if t.empty:
            print("\n(no trained points with per-step MLflow logs)")
        else:
            _print_trained(t, "trained runs (per-step logs)")
    return 0


def _print_trained(t, what: str) -> None:
    """The online alarm's lead per trained run (trained_leads) and the goals per half."""
    from goodhart.pipeline.report.alarm_eval import trained_goals
    from goodhart.pipeline.sweeps.tables import render

    print(f"\nonline alarm of {what}: lead_steps > 0 = fired before the smoothed utility peak")
    print(render(list(t.columns), t.itertuples(index=False, name=None)))
    goals = trained_goals(t)
    print("\ngoals (light runs quiet >= 90%; heavy runs' first alarm at or before the peak >= 80%):")
    print(render(list(goals.columns), goals.itertuples(index=False, name=None)))
    heavy = t[~t["light"]]
    if len(heavy):
        print(
            f"alarm-stop on the heavy runs (the last quiet check before the first alarm): regret against gold's best "
            f"smoothed utility, median {heavy['regret'].median():.3g}, worst {heavy['regret'].max():.3g} "
            f"(best utility median {heavy['best_utility'].median():.3g})"
        )


def _note_old_evidence(points) -> None:
    """Levels are re-decided from stored evidence under the current rule, but evidence an older
    alarm rule computed may lack what the current one reads (a tail-shape p-value, say): say so."""
    from goodhart.pipeline.sweeps.point import alarm_stale

    old = sum(alarm_stale(r) is not None for r in points.to_dict("records"))
    if old:
        print(
            f"note: {old} point(s) carry evidence an older alarm rule computed; their levels are re-decided "
            "from it under the current rule, not recomputed (`goodhart sweep` on the sweep file recomputes them)"
        )


def add_verbs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alarm-eval", help="score the gold-free Goodhart alarm against gold verdicts of finished sweeps")
    p.add_argument("sweeps", nargs="+", help="finished sweep directories (each with results.csv)")
    alarm_rule_flags(p)
    p.add_argument("--fire-on-watch", action="store_true", help="count `watch` as firing too")
    p.add_argument("--points", action="store_true", help="print every point's verdict and level")
    p.add_argument("--steps", action="store_true", help="trained points: online alarm vs the utility peak (MLflow)")
    p.set_defaults(fn=cmd_alarm_eval)
    add_bench_verb(sub)


MAX_POOL_SAMPLES = 2**25  # prompts x pool of one alarm-bench pool: 256 MiB per float64 array of them


def cmd_alarm_bench(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from goodhart.pipeline.report.alarm_bench import QUICK, BenchConfig, by_law, report, run_bench, tuned_on

    rule = alarm_rule(args)
    if args.ppo:
        return _ppo_bench(args, rule)
    if args.family:
        return _family_bench(args, rule)
    cfg = QUICK if args.quick else BenchConfig()
    given = (("seeds", args.seeds), ("prompts", args.prompts), ("pool", args.pool))
    given += (("first_seed", args.first_seed), ("text_seed", args.text_seed))
    over = {k: v for k, v in given if v is not None}
    over["utility"] = args.utility
    cfg = dataclasses.replace(cfg, rule=rule, **over)
    from goodhart.pipeline.errors import UsageError

    if cfg.pool < 8 or cfg.seeds < 2 or cfg.prompts < 2 or cfg.first_seed < 0 or cfg.text_seed < 0:
        raise UsageError(
            "alarm-bench: expected --seeds >= 2, --prompts >= 2, --pool >= 8, --first-seed >= 0 and --text-seed >= 0"
        )
    if cfg.prompts * cfg.pool > MAX_POOL_SAMPLES:
        raise UsageError(
            f"alarm-bench: --prompts x --pool = {cfg.prompts:,} x {cfg.pool:,} samples, more than the "
            f"{MAX_POOL_SAMPLES:,} one pool may hold in memory (each array of them is 256 MiB at the limit)"
        )
    t = time.perf_counter()
    df = run_bench(cfg)
    wall = time.perf_counter() - t
    halves = ("dev", "test") if args.half == "both" else (args.half,)
    print(
        f"alarm-bench: {cfg.seeds} seeds from {cfg.first_seed} (even dev, odd test), "
        f"{cfg.prompts} prompts x {cfg.pool} samples, {cfg.utility} utility"
        f"{f' (text pool seed {cfg.text_seed})' if cfg.utility == 'vader' else ''}, {len(df)} points; "
        "gold = label_points at run time\n"
    )
    print(report(df, rule, halves, wall, tuned=tuned_on(cfg)))
    if args.by_law:
        for h in halves:
            print(f"\n{h} half by law kind:\n{by_law(df, h, rule).to_string()}")
    if args.csv:
        from goodhart.pipeline.io import atomic_write_text

        atomic_write_text(Path(args.csv), df.drop(columns=["why"]).to_csv(index=False))
        print(f"\npoints written to {args.csv}")
    return 0


def _family_bench(args: argparse.Namespace, rule) -> int:
    """--family: each family named (pipeline/report/alarm_families.py) run whole, one row each, then
    the headline over the test families among them."""
    import time

    import pandas as pd

    from goodhart.pipeline.errors import UsageError
    from goodhart.pipeline.report.alarm_bench import run_bench
    from goodhart.pipeline.report.alarm_families import family_row, headline, pick, with_rule
    from goodhart.pipeline.sweeps.tables import render

    if args.seeds is not None and args.seeds < 2:
        raise UsageError("alarm-bench --family: expected --seeds >= 2")
    fams = pick(args.family)
    rows, frames = [], []
    for f in fams:
        cfg = with_rule(f, rule, args.seeds)
        t = time.perf_counter()
        df = run_bench(cfg)
        rows.append(family_row(df, rule, f) | {"wall s": round(time.perf_counter() - t)})
        frames.append(df.assign(family=f.name))
        print(f"{f.name} ({f.role}): {f.differs}; {cfg.seeds} curves, {len(df)} points", flush=True)
    print()
    print(render(list(rows[0]), [list(r.values()) for r in rows]))
    print()
    print("\n".join(headline(rows)))
    if args.seeds is not None:
        print(f"(--seeds {args.seeds}: a look at part of each family, not its reading)")
    if args.csv:
        from goodhart.pipeline.io import atomic_write_text

        out = pd.concat(frames, ignore_index=True)
        atomic_write_text(Path(args.csv), out.drop(columns=["why"]).to_csv(index=False))
        print(f"\npoints written to {args.csv}")
    return 0


def _ppo_bench(args: argparse.Namespace, rule) -> int:
    """The bench's slow variant: configs/sweep/alarm_bench_ppo.yaml (PPO on a hackable error of
    five kinds of tail, the online alarm every 2 steps) at seeds first_seed .. first_seed + seeds
    - 1, run as a sweep under runs/alarm_bench_ppo (finished points are reused), then the online
    alarm against each run's smoothed utility peak and the goals per half (even seeds dev)."""
    import tempfile

    import yaml

    from goodhart.pipeline.cli.main import main
    from goodhart.pipeline.config.load import configs_dir
    from goodhart.pipeline.errors import UsageError
    from goodhart.pipeline.report.alarm_eval import trained_leads
    from goodhart.pipeline.sweeps.spec import expand, load_sweep

    first, n = args.first_seed or 0, args.seeds if args.seeds is not None else 2
    if n < 1 or first < 0 or (args.ppo_steps is not None and args.ppo_steps < 2):
        raise UsageError("alarm-bench --ppo: expected --seeds >= 1, --first-seed >= 0 and --ppo-steps >= 2")
    src = configs_dir() / "sweep" / "alarm_bench_ppo.yaml"
    spec = yaml.safe_load(src.read_text())
    spec["base"] = str((src.parent / spec["base"]).resolve())
    spec["grid"]["seed"] = list(range(first, first + n))
    if args.ppo_steps is not None:
        spec["set"]["algo.steps"] = int(args.ppo_steps)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / src.name
        f.write_text(yaml.safe_dump(spec, sort_keys=False))
        rc = main(["sweep", str(f), "--quiet"])
        sweep, base = load_sweep(f)
        root = Path(expand(sweep, base)[0].cfg.output_dir) / sweep.name  # where the sweep wrote
    if rc != 0:
        return rc
    _print_trained(trained_leads(root, rule=rule), "the PPO runs")
    return 0


def add_bench_verb(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alarm-bench", help="score the gold-free alarm on procedurally drawn sweeps (dev/test halves)")
    p.add_argument("--quick", action="store_true", help="the CI variant: 32 seeds, 16 prompts x 2048 samples")
    p.add_argument("--seeds", type=int, default=None, help="curves to draw (default 200; even dev, odd test)")
    p.add_argument("--prompts", type=int, default=None, help="prompts per pool (default 16)")
    p.add_argument("--pool", type=int, default=None, help="base samples per prompt (default 4096)")
    p.add_argument(
        "--first-seed", type=int, default=None, help="first seed of the family (default 0; e.g. 1000: a fresh family)"
    )
    p.add_argument(
        "--text-seed", type=int, default=None, help="--utility vader: sampling seed of the text pool (default 0)"
    )
    p.add_argument("--half", choices=("dev", "test", "both"), default="test", help="which half to print (default test)")
    p.add_argument(
        "--utility",
        choices=("gaussian", "vader"),
        default="gaussian",
        help="gaussian (default), or vader: the tiny model's VADER scores on one cached text pool (slow the first time)",
    )
    p.add_argument(
        "--ppo",
        action="store_true",
        help="the slow variant: PPO on a hackable error of five tails (configs/sweep/alarm_bench_ppo.yaml), "
        "--seeds seeds from --first-seed (default 2 from 0), 2.5-4 min per seed on 2 cores",
    )
    p.add_argument("--ppo-steps", type=int, default=None, help="--ppo: PPO steps per run (default 40)")
    p.add_argument(
        "--family",
        default=None,
        help="run whole families instead (docs/alarm.md): dev, test, all, or names such as pool-262k,heavy-utility; "
        "--seeds then takes each family's first seeds only",
    )
    p.add_argument("--by-law", action="store_true", help="also print catches and false alarms per law kind")
    p.add_argument("--csv", default=None, help="write every point (evidence, gold, half) to this CSV")
    alarm_rule_flags(p)
    p.set_defaults(fn=cmd_alarm_bench)
