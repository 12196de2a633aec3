"""Sampling from a policy with the token ids kept, and scoring what was sampled.

A `Rollout` holds B sequences as one left-padded prompt block and one right-padded
completion block, so `input_ids = [query | response]` goes straight into a forward pass and
`response_mask` marks each completion up to and including its first EOS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from goodhart.pipeline.base.sampling import generate
from goodhart.pipeline.config.schema import SamplingConfig
from goodhart.pipeline.train.kl import completion_mask, token_logprobs


@dataclass
class Rollout:
    """B sampled sequences (token tensors on the model's device)."""

    prompts: list[str]
    """(B,) the prompt of each sequence."""
    completions: list[str]
    """(B,) decoded completions (special tokens dropped), what rewards score."""
    query: torch.Tensor
    """(B, Tq) prompt ids, left-padded."""
    query_mask: torch.Tensor
    """(B, Tq) 1 on prompt tokens."""
    response: torch.Tensor
    """(B, Tr) completion ids; pad after the first EOS."""
    response_mask: torch.Tensor
    """(B, Tr) 1 up to and including the first EOS."""
    logprobs: torch.Tensor | None = None
    """(B, Tr) log pi(y_t | prefix) under the sampling policy, 0 where masked (if computed)."""

    @property
    def n_prompt(self) -> int:
        return self.query.shape[1]

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.query, self.response], 1)  # (B, Tq + Tr)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.query_mask, self.response_mask], 1)  # (B, Tq + Tr)

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) completion tokens, EOS included."""
        return self.response_mask.sum(1)

    def __len__(self) -> int:
        return len(self.completions)


@contextlib.contextmanager
def unwrapped_for_generation(accelerator, model) -> Iterator[torch.nn.Module]:
    """The bare model for `generate`: unwrapped from DDP / DeepSpeed, and under ZeRO-3 with its
    sharded parameters gathered for the duration (every process must enter together)."""
    unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
    plugin = accelerator.state.deepspeed_plugin if accelerator is not None else None
    if plugin is not None and plugin.zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            yield unwrapped
    else:
        yield unwrapped


@torch.no_grad()
def sample_rollout(
    lm, tok, prompts: Sequence[str], n: int, sampling: SamplingConfig, with_logprobs: bool = True
) -> Rollout:
    """n completions of each prompt from `lm` (a bare causal LM) in one `generate` call.

    Sampling is pure: top_k=0, so temperature=1, top_p=1 samples the policy itself (what every
    KL figure assumes). Log-probs come from a separate forward pass with the same positions a
    training pass uses, not from `generate`'s scores, so old and new log-probs match exactly."""
    flat = [p for p in prompts for _ in range(n)]
    was_training = lm.training
    lm.eval()
    enc, response = generate(lm, tok, flat, sampling)  # (B, Tq) prompt block, (B, Tr) completions
    query = enc["input_ids"]
    mask = completion_mask(response, tok.eos_token_id)
    response = response.masked_fill(mask == 0, tok.pad_token_id)
    ro = Rollout(
        flat,
        tok.batch_decode(response, skip_special_tokens=True),
        query,
        enc["attention_mask"].long(),
        response,
        mask,
    )
    if with_logprobs:
        lp = token_logprobs(lm, ro.input_ids, ro.attention_mask, ro.n_prompt, sampling.temperature)
        ro = replace(ro, logprobs=lp * mask)
    lm.train(was_training)
    return ro


def score_rollout(scorer, rollout: Rollout) -> dict[str, np.ndarray | float | None]:
    """Proxy, utility and error of each completion (the proxy is what gets optimized; utility is
    only ever logged), plus the fraction of proxies clipped in this batch (None: no clipping)."""
    clip = scorer.clip
    seen0, clipped0 = (clip.n_seen, clip.n_clipped) if clip is not None else (0, 0)
    parts = scorer.components(rollout.prompts, rollout.completions)
    out: dict[str, np.ndarray | float | None] = dict(parts)
    out["clipped_fraction"] = None
    if clip is not None:
        seen = clip.n_seen - seen0
        out["clipped_fraction"] = (clip.n_clipped - clipped0) / seen if seen else 0.0
    return out
