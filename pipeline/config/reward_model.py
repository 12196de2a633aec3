"""The config of `goodhart train-rm`: a learned proxy reward trained on gold-labelled comparisons.

Gao, Schulman & Hilton (2022) in miniature: completions of the base policy on training prompts,
pairs of completions of one prompt labelled by a gold utility (optionally with label noise), a
sequence-classification reward model trained on them with TRL's RewardTrainer. The checkpoint is
a normal Hugging Face directory that any run config uses as ``reward: {type: hf, path: DIR}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from goodhart.pipeline.config.schema import (
    LoraSpec,
    ModelConfig,
    RewardSpec,
    SamplingConfig,
    SentimentReward,
    Strict,
    check_name,
)


class LabelNoise(Strict):
    """How a gold comparison becomes a (possibly wrong) preference label.

    none: the completion with the higher gold utility is chosen (exact ties are dropped).
    bradley_terry: a is chosen with probability sigmoid((g_a - g_b) / (temperature * sd)), sd the
    gold's standard deviation over the training completions (so the temperature is in gold-sd units;
    an exact tie is a fair coin, kept).
    flip: the noise-free label, flipped with probability `flip_rate`."""

    kind: Literal["none", "bradley_terry", "flip"] = "none"
    """Which noise model labels the pairs."""
    temperature: float = Field(0.25, gt=0)
    """Bradley-Terry temperature in units of the gold's sd (bradley_terry only): small is nearly noise-free."""
    flip_rate: float = Field(0.0, ge=0, le=0.5)
    """Probability that a label is flipped (flip only)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v


class RMTrainingConfig(Strict):
    """Optimizer settings of the reward-model fit (passed to TRL's RewardConfig)."""

    epochs: float = Field(2.0, gt=0)
    """Passes over the training pairs."""
    lr: float = Field(1e-3, gt=0)
    """AdamW learning rate (linear decay after `warmup_ratio`)."""
    batch_size: int = Field(32, ge=1)
    """Pairs per optimizer step (each pair is two sequences)."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    """Fraction of steps with a linear learning-rate warm-up."""
    max_length: int = Field(128, ge=8)
    """Pairs whose prompt + completion is longer than this many tokens are dropped (TRL's filter)."""
    center_rewards_coefficient: float | None = Field(0.01, ge=0)
    """TRL's penalty on the squared mean reward (keeps scores near 0; none: off)."""
    logging_steps: int = Field(10, ge=1)
    """Log the training loss and accuracy every this many steps (MLflow curve)."""


class RewardModelConfig(Strict):
    """`goodhart train-rm CONFIG`: data, labels, backbone and fit of one learned reward model."""

    name: str = "rm"
    """Label of this reward model (MLflow run name, card title)."""
    seed: int = 0
    """Seeds sampling, pairing, label noise, the head's initialisation and the training order."""
    out: str | None = None
    """Directory of the checkpoint (none: runs/rm/<name>-<config hash>). A finished checkpoint with the
    same config hash is reused, not retrained."""
    policy: ModelConfig = Field(default_factory=ModelConfig)
    """The base policy whose completions are compared (the policy the sweeps optimize)."""
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(n=16))
    """How completions are sampled; `n` is completions per prompt (pairs are formed within a prompt)."""
    prompts_source: str = "builtin"
    """builtin, or a local .jsonl/.json/.csv/.parquet file (as `prompts.source` of a run)."""
    prompts_column: str = "prompt"
    """Column holding the prompt text (files)."""
    prompts_seed: int = 0
    """Shuffle seed of the prompt split; equal to the sweeps' `prompts.seed` so that `reserve` works."""
    reserve: int = Field(32, ge=0)
    """The first prompts of the split, never used here: with the same seed and source they are a sweep's
    held-out eval prompts (`prompts.n_eval`), so the reward model never saw them."""
    heldout_prompts: int = Field(64, ge=1)
    """Prompts after `reserve` used only to test the reward model (accuracy and correlations with gold)."""
    n_pairs: int = Field(3000, ge=8)
    """Training comparisons (Gao et al.'s data size). Prompts needed: n_pairs / (n / 2), more if gold ties
    are dropped: each prompt's completions are paired at random, again if needed, until this many."""
    shards: int = Field(1, ge=1)
    """Split the training comparisons into this many disjoint parts, by prompt (each part
    `n_pairs` comparisons on prompts and completions of its own), and train on part `shard`. Two
    reward models of one config on different shards share no comparison: one can serve as the
    other's held-out proxy (`eval.holdout: {type: hf, path: DIR}`, docs/holdout.md)."""
    shard: int = Field(0, ge=0)
    """Which part this model trains on (0 .. shards - 1)."""
    utility: RewardSpec = Field(default_factory=SentimentReward)
    """The true (gold) utility that labels the pairs: any reward of the package, VADER sentiment by
    default; the same key as a run config's `reward.utility`. (`gold:`, its old name, still reads.)"""
    noise: LabelNoise = Field(default_factory=LabelNoise)
    """Label noise."""
    backbone: ModelConfig = Field(default_factory=ModelConfig)
    """The reward model's backbone: a sequence classifier with one output on top of this causal LM
    (tiny, smollm2-135m, minilm-l6 (an encoder: pipeline/base/encoders.py), or a local path). Its tokenizer is the one saved with the checkpoint."""
    lora: LoraSpec | None = None
    """Train LoRA adapters (merged into the saved checkpoint) plus the score head instead of all weights."""
    training: RMTrainingConfig = Field(default_factory=RMTrainingConfig)
    """The fit."""
    tracking: bool = True
    """Log the run (params, training curve, held-out figures, card) to MLflow."""
    tracking_uri: str | None = None
    """Tracking URI (none: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory)."""
    experiment: str = "train-rm"
    """MLflow experiment name."""

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return check_name(v)  # it names the checkpoint's directory under runs/rm/

    @model_validator(mode="after")
    def _shard_in_range(self) -> RewardModelConfig:
        if self.shard >= self.shards:
            raise ValueError(f"shard={self.shard}: expected 0 .. shards - 1 = {self.shards - 1}")
        return self

    @model_validator(mode="after")
    def _pairs_need_two(self) -> RewardModelConfig:
        if self.sampling.n < 2:
            raise ValueError(f"sampling.n={self.sampling.n}: comparisons need at least 2 completions per prompt")
        return self


RM_GROUPS = {"policy": "model", "backbone": "model", "utility": "reward"}
"""Keys of this config that name a file of a config group (``backbone: smollm2-135m``)."""


def load_rm_config(path: str | None, overrides: list[str] | None = None) -> RewardModelConfig:
    """YAML file (or defaults) + dotted overrides -> a validated RewardModelConfig; group names
    (``utility: sentiment``, ``backbone: tiny``) resolve to their files in configs/. The old key
    ``gold`` is read as ``utility``."""
    from goodhart.pipeline.config.load import apply_overrides, find_config, load_file, validate

    def resolve(tree: dict) -> dict:
        if "gold" in tree:  # the key's old name (one name per concept: utility, as in run configs)
            tree["utility"] = tree.pop("gold")
        for key, group in RM_GROUPS.items():
            if isinstance(tree.get(key), str):
                tree[key] = load_file(find_config(tree[key], None, group))
        return tree

    data = resolve(load_file(path) if path else {})
    data = resolve(apply_overrides(data, overrides or []))
    return validate(data, RewardModelConfig, source=str(path or "train-rm config"))
