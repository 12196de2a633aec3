"""`goodhart train-rm CONFIG [k=v ...]`: train a learned proxy reward on gold-labelled comparisons,
save a Hugging Face checkpoint with its card, log the run to MLflow, print the held-out figures."""

from __future__ import annotations

import argparse
import sys


def cmd_train_rm(args: argparse.Namespace) -> int:
    from pathlib import Path

    from goodhart.eval import metrics as M
    from goodhart.pipeline.config.reward_model import load_rm_config
    from goodhart.pipeline.train.reward_model import CARD_JSON, default_out, train_reward_model

    file, overrides = args.config, list(args.overrides)
    if file and "=" in file and not Path(file).exists():  # `train-rm key=value ...`: no file
        file, overrides = None, [file, *overrides]
    cfg = load_rm_config(file, overrides)
    out = Path(args.out) if args.out else default_out(cfg)
    check_before_work(cfg, out)
    tracker = run_id = None
    if cfg.tracking and not (out / CARD_JSON).is_file():
        from goodhart.pipeline.config.schema import TrackingConfig
        from goodhart.pipeline.sweeps.tracking import Tracker, check_store, flatten, resolve_uri

        uri = resolve_uri(TrackingConfig(uri=cfg.tracking_uri))
        # as a sweep does: a new SQLite store is created under a lock (two train-rm started together
        # on a fresh store raced in MLflow's own migrations: "duplicate column name: step"), and a
        # dead server or locked store is one line before any work
        check_store(uri)
        tracker = Tracker(uri)
        run_id = tracker.start_run(tracker.experiment_id(cfg.experiment), cfg.name, tags={"goodhart.kind": "train-rm"})
        tracker.log_params(run_id, flatten(cfg.model_dump(mode="json", exclude={"tracking", "tracking_uri"})))

    def log(metrics: dict[str, float], step: int) -> None:
        if run_id is not None:
            tracker.log_metrics(run_id, metrics, step)  # type: ignore[union-attr]

    try:
        res = train_reward_model(cfg, out, progress=not args.quiet, log=log)
    except BaseException:
        if run_id is not None:
            tracker.finish(run_id, "FAILED")  # type: ignore[union-attr]
        raise
    c = res.card
    if run_id is not None:
        tracker.log_metrics(run_id, {k: v for k, v in c.items() if k.startswith("rm/")}, 0)  # type: ignore[union-attr]
        for name in ("README.md", CARD_JSON):
            tracker.log_artifact(run_id, res.path / name, "card")  # type: ignore[union-attr]
        tracker.set_tags(run_id, {"goodhart.rm_path": str(res.path.resolve())})  # type: ignore[union-attr]
        tracker.finish(run_id)  # type: ignore[union-attr]
    what = "already trained (same config hash), reused" if res.reused else "trained"
    print(f"reward model {c['name']} {what}: {res.path}")
    print(
        f"  {c['n_pairs']} comparisons labelled by {c['utility']['type']}, noise {c['noise']['kind']}; "
        f"backbone {c['backbone']}{' + LoRA' if c['lora'] else ''}"
    )
    print(
        f"  held-out pairwise accuracy vs gold {c[M.RM_HELDOUT_ACCURACY]:.3f} ({c[M.RM_HELDOUT_PAIRS]} pairs); "
        f"Pearson {c[M.RM_HELDOUT_PEARSON]:.3f}, Spearman {c[M.RM_HELDOUT_SPEARMAN]:.3f}  [{c['seconds_total']:g} s]"
    )
    print(f"  use it: reward: {{type: hf, path: {res.path}}}  utility: {c['utility']['type']}")
    if cfg.shards > 1:  # disjoint data from the other shards' models: a held-out proxy for them
        print(
            f"  shard {cfg.shard} of {cfg.shards}: held out from the others as eval.holdout: {{type: hf, path: {res.path}}}"
        )
    if run_id is not None:
        print(f"  MLflow: experiment '{cfg.experiment}', run {run_id}", file=sys.stderr)
    return 0


def check_before_work(cfg, out) -> None:
    """The prompts file is there and is text, the output directory is writable and the backbone
    (and policy) can be loaded, before the minutes of sampling and labelling: a local path that
    is not there, or a hub id that is not in the Hugging Face cache while the hub is off or
    unreachable, is one line within seconds."""
    from goodhart.pipeline.base.models import check_checkpoint
    from goodhart.pipeline.base.prompts import check_source
    from goodhart.pipeline.io import check_writable_dir

    if not (out / "rm_card.json").is_file():
        check_source(cfg.prompts_source, cfg.prompts_column, "prompts_source")
        check_writable_dir(out, "train-rm --out")
    for key in ("backbone", "policy"):
        m = getattr(cfg, key, None)
        if getattr(m, "name", None) == "path" and getattr(m, "path", None):
            check_checkpoint(str(m.path), f"{key}.path")
        if getattr(m, "name", None) == "smollm2-135m":
            from goodhart.pipeline.base.smollm2 import gguf_file

            gguf_file()  # the optional package, before sampling and labelling
        if getattr(m, "name", None) == "minilm-l6":
            from goodhart.pipeline.base.encoders import minilm_dir

            minilm_dir()  # likewise


def add_verbs(sub) -> None:
    p = sub.add_parser("train-rm", help="train a learned proxy reward model on gold-labelled comparisons")
    p.add_argument("config", nargs="?", help="a train-rm config YAML (configs/rm/); default: built-in defaults")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides (n_pairs=300 noise.kind=flip ...)")
    p.add_argument("--out", help="checkpoint directory (default: the config's `out`, else runs/rm/<name>-<hash>)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_train_rm)
