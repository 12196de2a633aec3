"""`sampling.engine: vllm`: the base pool sampled by vLLM's offline engine (`vllm.LLM`), for GPUs.

vLLM is an optional package, never a dependency of the project: its builds pin their own torch
and transformers. Install it in the environment that runs the sweep on a GPU node
(`pip install vllm`); `goodhart sweep` checks for it before any work (one line if it is
missing). Only the base pool (and the feature-mode calibration samples) come from it; trained
optimizers sample their rollouts with transformers `generate` (pipeline/base/sampling.py), which
their log-probabilities and KL are computed against.

The same policy, other draws: the sampling settings map one to one (temperature, top_p, top_k
off, max_new_tokens -> max_tokens, EOS from the tokenizer, special tokens dropped from the
text), so a vLLM pool samples pi_0 as the hf pool does, in the model's dtype. Each prompt is one
request with its own seed (`seed * 2**32 + prompt_index * n`; vLLM gives child i of a request
seed + i), so every sample has a distinct seed and a pool does not depend on how vLLM batches.

`complete` is the boundary: it takes the engine object and its SamplingParams class, so the
tests drive it with a fake engine where vLLM is not installed (tests/test_sampling_engines.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

from goodhart.pipeline.config.schema import SamplingConfig
from goodhart.pipeline.errors import ConfigError

INSTALL_HINT = "pip install vllm  (on a GPU node; see docs/clusters.md, 'Fast pools on a GPU')"
SEED_STRIDE = 2**32
"""Request seeds of pool seed s lie in [s * 2**32, (s + 1) * 2**32): pools of different seeds never
share a sample's seed (up to 2**32 samples a pool)."""


def check_available() -> None:
    """ConfigError (one line) when the optional package is missing."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"sampling.engine=vllm needs the optional package vllm, not installed here: {INSTALL_HINT}")


def request_seeds(seed: int, n_prompts: int, n: int) -> list[int]:
    """One seed per prompt's request; child i of request j samples with seed + i (vLLM's rule)."""
    if n_prompts * n > SEED_STRIDE:
        raise ConfigError(f"sampling.engine=vllm: a pool of {n_prompts} x {n} samples exceeds 2**32 seeds")
    return [seed * SEED_STRIDE + j * n for j in range(n_prompts)]


def sampling_params(cfg: SamplingConfig, n: int, seed: int, params_cls: Callable[..., Any]):
    """vLLM's SamplingParams for one prompt's n samples at the pipeline's settings."""
    return params_cls(
        n=n,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=-1,  # off: pi_0 itself (what every KL figure assumes); -1 is "off" in every vLLM release
        max_tokens=cfg.max_new_tokens,
        seed=seed,
        skip_special_tokens=True,  # as tokenizer.batch_decode(..., skip_special_tokens=True)
    )


def complete(
    llm, prompts: Sequence[str], n: int, cfg: SamplingConfig, seed: int, params_cls, progress: bool = False
) -> list[list[str]]:
    """n completions of each prompt from the engine `llm` (anything with vLLM's
    `generate(prompts, params_list, use_tqdm=...)` returning one output per prompt, in order, each
    with `.outputs[i].text` and `.index`): a list (per prompt) of lists of strings."""
    seeds = request_seeds(seed, len(prompts), n)
    params = [sampling_params(cfg, n, s, params_cls) for s in seeds]
    outs = llm.generate(list(prompts), params, use_tqdm=progress)
    if len(outs) != len(prompts):
        raise RuntimeError(f"vLLM returned {len(outs)} outputs for {len(prompts)} prompts")
    comps = []
    for j, (p, out) in enumerate(zip(prompts, outs)):
        if getattr(out, "prompt", p) not in (p, None):
            raise RuntimeError(f"vLLM output {j} answers another prompt than the one asked")
        texts = [o.text for o in sorted(out.outputs, key=lambda o: o.index)]
        if len(texts) != n:
            raise RuntimeError(f"vLLM returned {len(texts)} completions for prompt {j}, asked for {n}")
        comps.append(texts)
    return comps


def pool_completions(
    model_dir: str, dtype: str, prompts: Sequence[str], n: int, cfg: SamplingConfig, seed: int, progress: bool
) -> list[list[str]]:
    """Build the engine on the model directory, sample the pool, let the GPU memory go."""
    check_available()
    import gc

    from vllm import LLM, SamplingParams

    llm = LLM(model=model_dir, dtype=dtype, seed=seed, gpu_memory_utilization=cfg.vllm_gpu_memory)
    try:
        return complete(llm, prompts, n, cfg, seed, SamplingParams, progress)
    finally:
        del llm
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
