"""Sampling completions from a causal LM, batched, seeded, with the base policy unchanged.

`generate` defaults (top_k=50 in many generation configs) silently truncate the policy; we
pass top_k=0 so that temperature=1, top_p=1 samples pi_0 itself, which every KL figure assumes.

A pool repeats each prompt n times, and a chat template makes the prompt long (SmolLM2's is
~35 tokens against 32 new ones): plain `generate` runs the prompt through the model once per
sample, a third of the work on a CPU. `generate` below runs each distinct prompt of a batch
once (all but its last token), copies that KV cache to the prompt's samples and lets
`model.generate` continue from it. Same tokens, same positions, same random draws: the samples
are those of a plain `generate` call with the same seed (tests/test_sampling_engines.py), at
~0.6-0.7x its cost (benchmarks/bench_generation.py).

Where a GPU and vLLM are available, `sampling.engine: vllm` samples the base pool with vLLM
instead (pipeline/base/vllm_engine.py); trained optimizers' rollouts always use `generate` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
    resume: str | Path | None = None,
) -> list[list[str]]:
    """n completions per prompt: a list (per prompt) of lists of strings.

    `resume`: a file rewritten after every batch with the completions so far and the random
    state after them, and read back by the next call with the same arguments: an interrupted
    pool goes on from its last finished batch and draws exactly what an uninterrupted call draws
    (a SmolLM2 pool is minutes to an hour of sampling on a CPU). A file of other arguments is
    ignored. The caller deletes it once the pool is saved."""
    import torch

    torch.manual_seed(seed)
    flat = [p for p in prompts for _ in range(n)]
    out: list[str] = []
    mark = _fingerprint(flat, cfg, seed)
    if resume is not None and (state := _read_partial(resume, mark)) is not None:
        out = state["out"]
        torch.set_rng_state(torch.tensor(state["rng"], dtype=torch.uint8))
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([torch.tensor(r, dtype=torch.uint8) for r in state["cuda_rng"]])
    bar = tqdm(total=len(flat), initial=len(out), desc=desc, unit="seq", disable=not progress, leave=False)
    with torch.inference_mode():
        for i in range(len(out), len(flat), cfg.batch_size):
            batch = flat[i : i + cfg.batch_size]
            _, new = generate(model, tok, batch, cfg)
            out.extend(tok.batch_decode(new, skip_special_tokens=True))
            bar.update(len(batch))
            if resume is not None and len(out) < len(flat):
                _write_partial(resume, mark, out)
    bar.close()
    return [out[j * n : (j + 1) * n] for j in range(len(prompts))]


def _fingerprint(flat: list[str], cfg: SamplingConfig, seed: int) -> str:
    """What a partial pool must match to be continued: the prompt rows, the sampling settings
    (batch size included: it orders the random draws) and the seed."""
    from goodhart.pipeline.io import short_hash

    return short_hash({"rows": short_hash(flat), "sampling": cfg.model_dump(mode="json"), "seed": seed})


def _write_partial(path: str | Path, mark: str, out: list[str]) -> None:
    import torch

    from goodhart.pipeline.io import atomic_write_json

    cuda = [r.tolist() for r in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    state = {"fingerprint": mark, "out": out, "rng": torch.get_rng_state().tolist(), "cuda_rng": cuda}
    atomic_write_json(path, state)


def _read_partial(path: str | Path, mark: str) -> dict | None:
    """The partial pool in `path` when it is one of these arguments (None: absent, torn or other)."""
    from goodhart.pipeline.io import read_json

    try:
        state = read_json(path) if Path(path).is_file() else None
    except (OSError, ValueError):
        return None
    ok = isinstance(state, dict) and state.get("fingerprint") == mark and isinstance(state.get("out"), list)
    return state if ok else None


def generate(model, tok, prompts: Sequence[str], cfg: SamplingConfig, share_prefill: bool = True):
    """One `generate` call over a batch of prompts, sampling the policy itself (top_k=0, see above).

    The one place the pipeline calls `generate` (the base pool here, training rollouts in
    goodhart.pipeline.train.rollout). Returns (the tokenizer's left-padded encoding of the prompts,
    the completion ids (B, T_new): whatever follows the prompt block, pad after an EOS).
    `share_prefill` (when the batch repeats a prompt): prefill each distinct prompt once (above)."""
    enc = tok(list(prompts), return_tensors="pt", padding=True).to(model.device)
    extra = {}
    if share_prefill and tok.padding_side == "left":
        extra = shared_prefill(model, enc, prompts)
    gen = model.generate(
        **enc,
        **extra,
        do_sample=True,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=0,
        max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )  # (B, T_prompt + T_new)
    return enc, gen[:, enc["input_ids"].shape[1] :]


def shared_prefill(model, enc, prompts: Sequence[str]) -> dict:
    """The KV cache of every prompt row of `enc` but its last token, computed once per distinct
    prompt and copied to each row: {name generate takes it by: cache} ({} when no prompt repeats,
    or the prompt block is a single token).

    Each row's cache is what `generate` would compute for it: the same left-padded tokens at the
    same positions (attention mask cumsum - 1, pads at 0, as `generate` derives them) under the
    same mask; `generate` sees a cache covering T - 1 of the T prompt tokens and runs only the
    last one before sampling, so the random draws are unchanged."""
    import torch

    ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T), left-padded
    first: dict[str, int] = {}
    for i, p in enumerate(prompts):
        first.setdefault(p, i)
    params = _forward_params(model)
    if len(first) == len(prompts) or ids.shape[1] < 2 or "position_ids" not in params:
        return {}  # nothing repeats, nothing to prefill, or a model that cannot take the positions
    rows = torch.tensor(list(first.values()), device=ids.device)  # (U,) one row per distinct prompt
    which = {p: k for k, p in enumerate(first)}
    expand = torch.tensor([which[p] for p in prompts], device=ids.device)  # (B,) row -> its prompt
    u_ids, u_mask = ids[rows, :-1], mask[rows, :-1]  # (U, T-1)
    positions = (u_mask.long().cumsum(-1) - 1).masked_fill(u_mask == 0, 0)
    kw = {"logits_to_keep": 1} if "logits_to_keep" in params else {}  # not (U, T-1, vocab)
    out = model(input_ids=u_ids, attention_mask=u_mask, position_ids=positions, use_cache=True, **kw)
    # transformers 5.2x names the cache `cache` (generate still takes `past_key_values` until 6.0)
    name = "cache" if getattr(out, "cache", None) is not None else "past_key_values"
    cache = getattr(out, name, None)
    if cache is None or not hasattr(cache, "batch_select_indices"):
        return {}  # a model without a Cache object: plain generate
    cache.batch_select_indices(expand)  # (U, ...) -> (B, ...)
    return {name: cache}


def _forward_params(model) -> set[str]:
    """The keyword names the causal LM's own forward takes (through a peft wrapper)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def pool_completions(
    cfg, prompts: list[str], n: int, seed: int, progress: bool, desc: str, resume: Path | None = None
) -> list[list[str]]:
    """A base pool's completions (prompts x n) from the config's engine (`sampling.engine`):
    vLLM (pipeline/base/vllm_engine.py) or the model loaded here and `sample_completions`
    (`resume`: its partial-pool file)."""
    from goodhart.pipeline.base.models import load_causal_lm, model_path

    if cfg.sampling.engine == "vllm":
        from goodhart.pipeline.base.vllm_engine import pool_completions as vllm_pool

        return vllm_pool(model_path(cfg.model, progress), cfg.model.dtype, prompts, n, cfg.sampling, seed, progress)
    model, tok = load_causal_lm(cfg.model, progress=progress)
    return sample_completions(model, tok, prompts, n, cfg.sampling, seed, progress, desc, resume=resume)
