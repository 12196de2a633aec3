"""Sampling completions from a causal LM, batched, seeded, with the base policy unchanged.

`generate` defaults (top_k=50 in many generation configs) silently truncate the policy; we
pass top_k=0 so that temperature=1, top_p=1 samples pi_0 itself, which every KL figure assumes.
"""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from goodhart.pipeline.config.schema import SamplingConfig


def sample_completions(
    model,
    tok,
    prompts: Sequence[str],
    n: int,
    cfg: SamplingConfig,
    seed: int,
    progress: bool = True,
    desc: str = "sampling",
) -> list[list[str]]:
    """n completions per prompt: a list (per prompt) of lists of strings."""
    import torch

    torch.manual_seed(seed)
    flat = [p for p in prompts for _ in range(n)]
    out: list[str] = []
    bar = tqdm(total=len(flat), desc=desc, unit="seq", disable=not progress, leave=False)
    with torch.inference_mode():
        for i in range(0, len(flat), cfg.batch_size):
            batch = flat[i : i + cfg.batch_size]
            _, new = generate(model, tok, batch, cfg)
            out.extend(tok.batch_decode(new, skip_special_tokens=True))
            bar.update(len(batch))
    bar.close()
    return [out[j * n : (j + 1) * n] for j in range(len(prompts))]


def generate(model, tok, prompts: Sequence[str], cfg: SamplingConfig):
    """One `generate` call over a batch of prompts, sampling the policy itself (top_k=0, see above).

    The one place the pipeline calls `generate` (the base pool here, training rollouts in
    goodhart.pipeline.train.rollout). Returns (the tokenizer's left-padded encoding of the prompts,
    the completion ids (B, T_new): whatever follows the prompt block, pad after an EOS)."""
    enc = tok(list(prompts), return_tensors="pt", padding=True).to(model.device)
    gen = model.generate(
        **enc,
        do_sample=True,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=0,
        max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )  # (B, T_prompt + T_new)
    return enc, gen[:, enc["input_ids"].shape[1] :]
