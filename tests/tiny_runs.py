"""Tiny budgets of every trained optimizer on the small built-in model (conftest's
`small_model_dir`): the overrides their tests start from, and running one directly."""

from __future__ import annotations

from pathlib import Path

# 32 training prompts, 4-8 held-out ones, 8 samples of 8 tokens for the base pool; no tracking.
PPO = [
    "algo=ppo",
    "prompts.n_train=32",
    "prompts.n_eval=4",
    "sampling.n=8",
    "sampling.max_new_tokens=8",
    "eval.bootstrap=20",
    "eval.n_examples=2",
    "tracking.enabled=false",
    "algo.batch_prompts=2",
    "algo.samples_per_prompt=4",
    "algo.minibatch=8",
    "algo.lr=1e-3",
    "algo.eval_samples=4",
    "algo.checkpoint_every=0",
]
TRL = [  # rloo and grpo (the algo= override goes first)
    "prompts.n_train=32",
    "prompts.n_eval=4",
    "sampling.n=8",
    "sampling.max_new_tokens=8",
    "eval.bootstrap=20",
    "eval.n_examples=2",
    "tracking.enabled=false",
    "algo.batch_prompts=4",
    "algo.num_generations=4",
    "algo.lr=1e-3",
    "algo.eval_samples=4",
    "algo.checkpoint_every=0",
]
BON_FT = [
    "algo=bon-ft",
    "prompts.n_train=32",
    "prompts.n_eval=8",
    "sampling.n=8",
    "sampling.max_new_tokens=8",
    "eval.bootstrap=20",
    "eval.n_examples=2",
    "tracking.enabled=false",
    "algo.n=8",
    "algo.epochs=3",
    "algo.minibatch=8",
    "algo.lr=2e-3",
    "algo.eval_samples=8",
    "algo.round_kl_samples=16",
]
TINY = {"ppo": PPO, "rloo": ["algo=rloo", *TRL], "grpo": ["algo=grpo", *TRL], "bon-ft": BON_FT}
"""kind -> the overrides of its tiny run."""


def tiny_cfg(model_dir: Path, kind: str, *overrides: str):
    """The tiny run of `kind` on the model at `model_dir`, then `overrides`."""
    from goodhart.pipeline.config.load import configs_dir, load_config

    return load_config(
        str(configs_dir() / "base.yaml"), ["model.name=path", f"model.path={model_dir}", *TINY[kind], *overrides]
    )


def run_direct(cfg, point_dir: Path):
    """Run the optimizer itself (no run_point); returns (PointOutput, [(step, metrics), ...])."""
    from goodhart.pipeline import optimizers
    from goodhart.pipeline.base.context import PointContext

    log: list[tuple[int, dict]] = []
    ctx = PointContext(cfg, point_dir, progress=False, log_metrics=lambda m, s: log.append((s, dict(m))))
    return optimizers.get(cfg.algo.kind)(ctx), log


def tiny_classifier(model_dir: Path, out: Path) -> Path:
    """A randomly initialized one-layer Llama sequence classifier on the small model's tokenizer,
    saved as an `hf` reward checkpoint at `out` (seeded: the same weights every time)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)
    rm = LlamaForSequenceClassification(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_labels=1,
            pad_token_id=tok.pad_token_id,
        )
    )
    rm.save_pretrained(out)
    tok.save_pretrained(out)
    return out
