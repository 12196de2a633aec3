"""Held-out evaluation of any trained policy into a result row comparable with tilt and bon rows.

M samples per eval prompt from the policy; proxy and utility of each; sequence KL to pi_0 by
`goodhart.pipeline.train.kl` (seq_k1); per-prompt means; gains paired against the base pool's per-prompt
means on the same prompts (`ctx.pool()`); `summarize` for the bootstrap intervals.
"""

from __future__ import annotations

import numpy as np
import torch

from goodhart.eval import metrics as M
from goodhart.eval.alarm import alarm
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.ensemble import base_stats
from goodhart.pipeline.base.measure import PointOutput, summarize
from goodhart.pipeline.train.kl import KL_ESTIMATOR, kl_metrics, sequence_kl
from goodhart.pipeline.train.policy import Reference
from goodhart.pipeline.train.rollout import sample_rollout, score_rollout, unwrapped_for_generation


def sample_policy(
    ctx: PointContext,
    policy,
    reference: Reference,
    tok,
    scorer,
    n_samples: int,
    accelerator=None,
    torch_seed: int = 0,
    indices: list[int] | None = None,
) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """n_samples from `policy` per held-out prompt (the base pool's prompts), scored and with their
    sequence KL to pi_0: ({proxy, utility, k1, k3, tokens}: (P, n_samples) arrays, the per-prompt
    records with the completions). torch's RNG is forked and seeded with torch_seed (+ the rank):
    the caller's stream is left as it was. Under several processes the prompts are split evenly,
    every process must call this, and every process returns the same arrays. `indices`: only these
    held-out prompts (a block of a grown evaluation)."""
    from goodhart.pipeline.train.policy import generation_lm

    cfg = ctx.cfg
    prompts = ctx.prompts()[1]
    if indices is not None:
        prompts = [prompts[j] for j in indices]
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    per = -(-len(prompts) // world)
    mine = [min(i, len(prompts) - 1) for i in range(rank * per, (rank + 1) * per)]  # padded: equal work per process
    chunk = max(1, cfg.sampling.batch_size // n_samples)

    rows: list[tuple[int, dict[str, np.ndarray]]] = []
    with torch.random.fork_rng(devices=[]), unwrapped_for_generation(accelerator, policy) as bare:
        torch.manual_seed(torch_seed + rank)
        lm = generation_lm(bare)
        for i in range(0, len(mine), chunk):
            idx = mine[i : i + chunk]
            ro = sample_rollout(lm, tok, [prompts[j] for j in idx], n_samples, cfg.sampling, with_logprobs=True)
            ref_lp = reference.token_logprobs(ro.input_ids, ro.attention_mask, ro.n_prompt, cfg.sampling.temperature)
            kl = sequence_kl(ro.logprobs, ref_lp, ro.response_mask)
            sc = score_rollout(scorer, ro)
            for k, j in enumerate(idx):
                s = slice(k * n_samples, (k + 1) * n_samples)
                rows.append(
                    (
                        j,
                        {
                            "proxy": sc["proxy"][s],
                            "utility": sc["utility"][s],
                            "k1": kl["k1"][s],
                            "k3": kl["k3"][s],
                            "tokens": kl["tokens"][s],
                            "completion": np.asarray(ro.completions[s], dtype=object),
                        },
                    )
                )
    if world > 1:
        from accelerate.utils import gather_object

        rows = gather_object(rows)
    by_prompt = dict(rows)  # padding duplicates collapse
    per_prompt = [by_prompt[j] for j in range(len(prompts))]
    stack = {k: np.stack([r[k] for r in per_prompt]) for k in ("proxy", "utility", "k1", "k3", "tokens")}  # (P, M)
    return stack, per_prompt


def _held_out(ctx, policy, reference, tok, scorer, n_samples: int, accelerator, torch_seed: int):
    """sample_policy on every held-out prompt; a grown evaluation (sampling.grown_from with
    eval_samples: resolve rounds) in blocks (base/grow.py) whose first is the first pass's own
    call, so its samples are those of the first pass and the rest come from their own seeds."""
    g = ctx.cfg.sampling.grown_from
    if g is None or g.eval_samples is None:
        return sample_policy(ctx, policy, reference, tok, scorer, n_samples, accelerator, torch_seed)
    from goodhart.pipeline.base.grow import block_seed, blocks

    P = len(ctx.prompts()[1])
    per_prompt: list[dict] = [{} for _ in range(P)]
    for b in blocks(g.n_eval, g.eval_samples, P, n_samples):
        _, rows = sample_policy(
            ctx,
            policy,
            reference,
            tok,
            scorer,
            b.s1 - b.s0,
            accelerator,
            block_seed(torch_seed, b),
            list(range(b.p0, b.p1)),
        )
        for j, r in enumerate(rows):
            d = per_prompt[b.p0 + j]
            for k, v in r.items():
                d[k] = np.concatenate([d[k], v]) if k in d else v
    stack = {k: np.stack([r[k] for r in per_prompt]) for k in ("proxy", "utility", "k1", "k3", "tokens")}
    return stack, per_prompt


def evaluate_policy(
    ctx: PointContext,
    policy,
    reference: Reference,
    tok,
    scorer,
    n_samples: int,
    accelerator=None,
    seed: int = 0,
) -> PointOutput:
    """Evaluate `policy` (a causal LM, possibly wrapped by accelerate or a PolicyWithValue) on the
    held-out prompts. Under several processes the prompts are split evenly, every process must
    call this, and every process returns the same row."""
    cfg = ctx.cfg
    prompts = ctx.prompts()[1]
    stack, per_prompt = _held_out(ctx, policy, reference, tok, scorer, n_samples, accelerator, seed * 1000)
    if accelerator is not None:
        with accelerator.main_process_first():  # main samples the base pool, the others load it
            pool = ctx.pool()
    else:
        pool = ctx.pool()
    ho = _holdout(ctx, prompts, per_prompt, stack)  # (P,) policy and base means of the held-out proxy, or None
    row = summarize(
        cfg,
        stack["proxy"].mean(1),
        stack["utility"].mean(1),
        stack["k1"].mean(1),
        pool.proxy.mean(1),
        pool.utility.mean(1),
        KL_ESTIMATOR,
        *(ho or (None, None)),
    )
    per_token = kl_metrics({k: stack[k].ravel() for k in ("k1", "k3", "tokens")})
    row.update(
        {
            M.KL_K1: per_token[M.KL_K1],
            M.KL_K3: per_token[M.KL_K3],
            M.N_SAMPLES: n_samples,
            M.LENGTH: float(stack["tokens"].mean()),
        }
    )
    # The gold-free alarm on the held-out samples: their proxies, our KL, the base pool's proxies
    # (with the null's replicates: the base's tail-shape test joins the gain test, as online).
    rule = ctx.alarm_rule
    row.update(alarm(stack["proxy"], row[M.KL], base_stats(pool.proxy, rule), rule=rule).row())
    examples = [
        {
            "prompt": prompts[j],
            "completion": str(per_prompt[j]["completion"][0]),
            "proxy": float(per_prompt[j]["proxy"][0]),
            "utility": float(per_prompt[j]["utility"][0]),
            "kl_seq_k1": float(per_prompt[j]["k1"][0]),
        }
        for j in range(min(cfg.eval.n_examples, len(prompts)))
    ]
    return PointOutput(row, examples)


def _holdout(ctx: PointContext, prompts, per_prompt, stack) -> tuple[np.ndarray, np.ndarray] | None:
    """The held-out proxy (eval.holdout) on the policy's samples and on the base pool, per prompt:
    the utility gain estimated without gold (pipeline/base/holdout.py). Every process scores the
    same gathered samples, so every process returns the same row."""
    if ctx.cfg.eval.holdout is None:
        return None
    from goodhart.pipeline.base.holdout import sample_holdout

    P, m = stack["proxy"].shape
    flat_p = [prompts[j] for j in range(P) for _ in range(m)]
    flat_c = [str(c) for j in range(P) for c in per_prompt[j]["completion"]]
    u, x = stack["utility"].ravel(), (stack["proxy"] - stack["utility"]).ravel()
    r2 = sample_holdout(ctx.cfg, flat_p, flat_c, u, x).reshape(P, m)
    return r2.mean(1), ctx.holdout().values.mean(1)
