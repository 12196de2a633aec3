"""The probe's typed config. Defaults live in configs/probe/default.yaml; the CLI applies
`probe.<key>=value` overrides to it (every other override goes to the run config that names
the reward and the base model)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from goodhart.pipeline.config.load import apply_overrides, configs_dir, load_file, validate
from goodhart.pipeline.config.schema import Strict
from goodhart.pipeline.probe import MODES as MODES  # (its home; imported from here too)

Mode = Literal["random", "base", "optimize"]


class SearchConfig(Strict):
    """ACG (an accelerated GCG): coordinate-gradient search over the input tokens of a
    differentiable reward. Each step takes the gradient of the reward with respect to the
    one-hot tokens, keeps the top-k tokens per position, builds `candidates` sequences that
    each change `edits` random positions to one of those tokens, scores them all (batched)
    and moves to the best one, even when it is worse than the current sequence (the best
    ever seen is kept apart). The number of edits anneals from `edits_start` to `edits_end`."""

    steps: int = Field(60, ge=1)
    """Search steps per restart (one gradient and `candidates` reward forwards each)."""
    candidates: int = Field(128, ge=1)
    """Candidate sequences scored per step."""
    top_k: int = Field(32, ge=1)
    """Tokens per position proposed by the gradient."""
    edits_start: int = Field(4, ge=1)
    """Positions each candidate changes at the first step (large moves early)."""
    edits_end: int = Field(1, ge=1)
    """Positions each candidate changes at the last step (fine moves late); linear in between."""
    restarts: int = Field(2, ge=1)
    """Independent searches from fresh random sequences; every restart's best is saved."""
    seed: int = 0
    """Seeds the initial sequences and the random edits."""
    retokenize_filter: bool = True
    """Keep only candidates whose text re-tokenizes to the same tokens (as nanoGCG does), so the
    reward reached is the reward the pipeline gives to the text; off: token-level only."""

    @model_validator(mode="after")
    def _schedule(self) -> SearchConfig:
        if self.edits_end > self.edits_start:
            raise ValueError(f"edits_end={self.edits_end} must not exceed edits_start={self.edits_start}")
        return self


class ProbeConfig(Strict):
    """How far a reward's tail reaches: random tokens, base completions, optimized inputs."""

    prompt: str | None = None
    """The context every sequence follows (random tokens, base completions, optimized tokens are
    all scored as prompt + sequence). None: the first eval prompt of the run config."""
    n_samples: int = Field(2000, ge=1)
    """Sequences scored by `random` and `base` (tail diagnostics need >= 500)."""
    length: int = Field(24, ge=1, le=16_384)
    """Tokens (of the reward model's tokenizer) in a random or optimized sequence (at most 16,384:
    beyond the context of the reward models a probe is for)."""
    batch_size: int = Field(256, ge=1)
    """Sequences per reward forward (random mode and candidate scoring)."""
    base_reference: int = Field(512, ge=2)
    """optimize: base completions scored for the reference distribution (mean, std, quantiles)
    when the probe directory holds no `base` result for the same prompt and reward."""
    mix_p: list[float] = Field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 0.1, 0.5])
    """optimize: probabilities p of the mixture (1 - p) pi_0 + p delta_{y*} in the KL/gain table."""
    random_budget: bool = True
    """optimize: also score as many uniform random sequences as the search scored, for "best of the
    same budget" (doubles the scoring cost; off for large models, where `random` mode says as much)."""
    search: SearchConfig = Field(default_factory=SearchConfig)
    """optimize: the coordinate-gradient search."""
    dir: str | None = None
    """Probe directory (all modes of one probe write here); None: <output_dir>/probe-<name>."""
    tails: bool = True
    """random/base: run the tail diagnostics (light / heavy verdict) and draw the tail plots."""

    @model_validator(mode="after")
    def _ps(self) -> ProbeConfig:
        bad = [p for p in self.mix_p if not 0 < p <= 1]
        if bad:
            raise ValueError(f"mix_p entries must lie in (0, 1], got {bad}")
        if self.n_samples * self.length > MAX_TOKENS:  # random mode holds them all at once
            raise ValueError(
                f"n_samples x length = {self.n_samples * self.length:,} tokens, more than the {MAX_TOKENS:,} "
                "one probe holds in memory: lower n_samples or length"
            )
        return self


MAX_TOKENS = 50_000_000  # n_samples x length of one probe (random mode holds all of them: ~400 MB of ids)


def load_probe_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ProbeConfig:
    """configs/probe/default.yaml (or `path`) + `key=value` overrides (without the `probe.` prefix)."""
    file = Path(path) if path else configs_dir() / "probe" / "default.yaml"
    if path and not file.is_file() and (configs_dir() / "probe" / f"{path}.yaml").is_file():
        file = configs_dir() / "probe" / f"{path}.yaml"  # `--probe-config rm7b_gpu`
    data = apply_overrides(load_file(file), overrides or [])
    return validate(data, ProbeConfig, source=str(file))
