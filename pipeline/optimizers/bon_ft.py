"""`bon-ft`: best-of-n fine-tuning (expert iteration, rejection-sampling fine-tuning).

Round r, with pi_r the current policy and pi_0 the base (pi_0 = pi_0 at r = 0):

    sample   y_1 .. y_n ~ pi_r(. | x)                 for each of the round's training prompts x
    select   y*(x) = argmax_i proxy(x, y_i)           the best of n by proxy (utility only logged)
    tune     `epochs` passes of AdamW over the kept pairs (x, y*), minibatches B, minimizing

               L = 1/|T| sum_{(x, y*) in B} sum_{t in y*} [ -log pi(y*_t | x, y*_<t)
                                                           + kl.coef * KL_t ]
               KL_t = sum_v pi(v | x, y*_<t) * (log pi(v | x, y*_<t) - log pi_0(v | x, y*_<t))

             T: the completion tokens of the minibatch (the prompt is masked out of the loss; EOS
             is trained when it was sampled). KL_t is the exact KL(pi || pi_0) of the next-token
             distributions at each tuned prefix (a sum over the vocabulary, no sampling noise);
             kl.coef = 0 is plain supervised tuning. Logits are divided by the sampling
             temperature, as in every log-prob of the pipeline (pi is the sampler).
    measure  our KL (goodhart.pipeline.train.kl, seq_k1) on `round_kl_samples` held-out samples of pi_{r+1}

One round of best-of-n sampling alone moves the policy by at most log n - (n-1)/n nats (the
best-of-n bound); tuning towards it compounds over rounds. After the last round the policy is
evaluated like every trained point (evaluate_policy). Checkpoints after every round (weights,
optimizer, RNG); a re-run resumes after the last finished round. Runs under `accelerate launch`.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from goodhart.eval import metrics as M
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput
from goodhart.pipeline.train import (
    Reference,
    TrainSession,
    preemption,
    sample_rollout,
    score_rollout,
    unwrapped_for_generation,
)
from goodhart.pipeline.train.kl import (
    completion_logits,
    kl_metrics,
    logprobs_of,
    masked_mean,
    position_ids,
    sequence_kl,
)
from goodhart.pipeline.train.loop import Steps, Training


# ============================================================================================
# Sampling and selection
# ============================================================================================
def round_prompts(sess: TrainSession, round_: int) -> list[str]:
    """This process's prompts for a round: `prompts_per_round` drawn by (seed, round), or all
    training prompts split evenly (wrapping, so every process runs the same number of steps)."""
    algo, acc = sess.ctx.cfg.algo, sess.accelerator
    if algo.prompts_per_round is not None:
        return sess.train_prompts(algo.prompts_per_round, round_)
    train = sess.ctx.prompts()[0]
    per = math.ceil(len(train) / acc.num_processes)
    return [train[(acc.process_index * per + i) % len(train)] for i in range(per)]


def sample_and_select(sess: TrainSession, model, tok, prompts: list[str], n: int):
    """n samples per prompt from the current policy; per prompt the best by proxy.
    Returns (kept [(query ids, completion ids incl. EOS)], scores of all samples, scores of the kept)."""
    cfg = sess.ctx.cfg
    chunk = max(1, cfg.sampling.batch_size // n)
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    every: dict[str, list[np.ndarray]] = {"proxy": [], "utility": [], "tokens": []}
    best: dict[str, list[np.ndarray]] = {"proxy": [], "utility": []}
    with unwrapped_for_generation(sess.accelerator, model) as bare:
        for i in range(0, len(prompts), chunk):
            ro = sample_rollout(bare, tok, prompts[i : i + chunk], n, cfg.sampling, with_logprobs=False)
            sc = score_rollout(sess.scorer, ro)
            proxy = np.asarray(sc["proxy"], dtype=np.float64).reshape(-1, n)  # (P, n): groups are contiguous
            pick = np.argmax(np.where(np.isnan(proxy), -np.inf, proxy), 1) + n * np.arange(proxy.shape[0])  # (P,)
            for b in pick:
                kept.append(
                    (ro.query[b][ro.query_mask[b].bool()].cpu(), ro.response[b][ro.response_mask[b].bool()].cpu())
                )
            every["proxy"].append(proxy.ravel())
            every["utility"].append(np.asarray(sc["utility"], dtype=np.float64))
            every["tokens"].append(ro.lengths.double().cpu().numpy())
            best["proxy"].append(proxy.ravel()[pick])
            best["utility"].append(np.asarray(sc["utility"], dtype=np.float64)[pick])
    cat = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
    return kept, cat(every), cat(best)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int, device):
    """[(query, completion)] -> input_ids = [left-padded queries | right-padded completions] (B, Tq + Tr),
    attention_mask (B, Tq + Tr), completion ids (B, Tr), completion mask (B, Tr), Tq."""
    tq = max(len(q) for q, _ in batch)
    tr = max(len(r) for _, r in batch)
    B = len(batch)
    query = torch.full((B, tq), pad_id, dtype=torch.long)
    qmask = torch.zeros((B, tq), dtype=torch.long)
    resp = torch.full((B, tr), pad_id, dtype=torch.long)
    rmask = torch.zeros((B, tr), dtype=torch.long)
    for i, (q, r) in enumerate(batch):
        query[i, tq - len(q) :], qmask[i, tq - len(q) :] = q, 1
        resp[i, : len(r)], rmask[i, : len(r)] = r, 1
    to = lambda t: t.to(device)  # noqa: E731
    return to(torch.cat([query, resp], 1)), to(torch.cat([qmask, rmask], 1)), to(resp), to(rmask), tq


# ============================================================================================
# Supervised tuning on the kept samples
# ============================================================================================
def tune(sess: TrainSession, model, reference: Reference, tok, opt, kept) -> dict[str, float]:
    """`epochs` passes over `kept`; returns mean losses and gradient norm over the round's steps."""
    cfg, algo, acc = sess.ctx.cfg, sess.ctx.cfg.algo, sess.accelerator
    temp = cfg.sampling.temperature
    stats: dict[str, list[float]] = {"sft": [], "kl": [], "loss": [], "gnorm": []}
    model.train()
    for _ in range(algo.epochs):
        for mb in torch.randperm(len(kept)).split(algo.minibatch):
            ids, am, resp, rmask, tq = collate([kept[i] for i in mb], tok.pad_token_id, acc.device)
            m = rmask.float()  # (B, Tr)
            out = model(input_ids=ids, attention_mask=am, position_ids=position_ids(am))
            logits = completion_logits(out.logits, tq, temp)  # (B, Tr, V): predicts y_t
            sft = masked_mean(-logprobs_of(logits, resp), m)  # mean NLL of the kept tokens
            loss = sft
            if algo.kl.coef > 0:
                logp = torch.log_softmax(logits, -1)  # (B, Tr, V)
                ref_logp = torch.log_softmax(reference.logits(ids, am, tq, temp), -1)  # (B, Tr, V)
                kl_t = (logp.exp() * (logp - ref_logp)).sum(-1)  # (B, Tr): exact KL(pi || pi_0) per prefix
                kl = masked_mean(kl_t, m)
                loss = sft + algo.kl.coef * kl
                stats["kl"].append(kl.item())
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            if algo.max_grad_norm is not None:
                gnorm = acc.clip_grad_norm_(model.parameters(), algo.max_grad_norm)
                if gnorm is not None:
                    stats["gnorm"].append(float(gnorm))
            opt.step()
            stats["sft"].append(sft.item())
            stats["loss"].append(loss.item())
    local = torch.tensor([float(np.mean(v)) if v else float("nan") for v in stats.values()], device=acc.device)
    return dict(zip(stats, acc.reduce(local, "mean").tolist()))


# ============================================================================================
# Our KL on a few held-out samples after each round
# ============================================================================================
def heldout_kl(sess: TrainSession, model, reference: Reference, tok, n_samples: int, round_: int) -> dict[str, float]:
    """`kl`, `kl/k1`, `kl/k3` (goodhart.pipeline.train.kl) on n_samples held-out completions, one per goodhart.eval prompt
    (cycling). Sampled under a forked RNG: measuring does not change the training stream."""
    cfg, acc = sess.ctx.cfg, sess.accelerator
    prompts = sess.ctx.prompts()[1]
    per = math.ceil(n_samples / acc.num_processes)
    mine = [prompts[(acc.process_index * per + i) % len(prompts)] for i in range(per)]
    parts = []
    with torch.random.fork_rng(devices=[]), unwrapped_for_generation(acc, model) as bare:
        torch.manual_seed(sess.seed * 1000 + round_ * 31 + acc.process_index)
        for i in range(0, per, cfg.sampling.batch_size):
            ro = sample_rollout(bare, tok, mine[i : i + cfg.sampling.batch_size], 1, cfg.sampling, with_logprobs=True)
            ref_lp = reference.token_logprobs(ro.input_ids, ro.attention_mask, ro.n_prompt, cfg.sampling.temperature)
            parts.append(sequence_kl(ro.logprobs, ref_lp, ro.response_mask))
    seq = {k: sess.gather_array(np.concatenate([p[k] for p in parts])) for k in ("k1", "k3", "tokens")}
    return kl_metrics(seq)


# ============================================================================================
# The optimizer: set up, resume, rounds, checkpoint, evaluate
# ============================================================================================
def run(ctx: PointContext) -> PointOutput:
    with preemption.handled():  # SIGUSR1 / SIGTERM: checkpoint at the end of the round, then exit 75
        return _train_and_evaluate(ctx)


def _train_and_evaluate(ctx: PointContext) -> PointOutput:
    algo = ctx.cfg.algo
    t = Training.start(ctx)
    sess, model, ref, tok, opt = t.sess, t.model, t.ref, t.tok, t.opt
    opt_steps = [0]  # optimizer steps over all rounds (resumed from the checkpoint)

    def round_(r: int) -> dict[str, float]:
        t0 = time.perf_counter()
        # ---- 1. sample n per prompt from the current policy, keep the best by proxy
        kept, every, best = sample_and_select(sess, model, tok, round_prompts(sess, r), algo.n)
        every = {k: sess.gather_array(v) for k, v in every.items()}
        best = {k: sess.gather_array(v) for k, v in best.items()}
        # ---- 2. tune on the kept samples
        losses = tune(sess, model, ref, tok, opt, kept)
        opt_steps[0] += algo.epochs * math.ceil(len(kept) / algo.minibatch)
        # ---- 3. the round's metrics: rewards of all samples and of the kept ones, losses, our KL after it
        metrics = {
            M.PROXY: float(every["proxy"].mean()),
            M.UTILITY: float(every["utility"].mean()),
            M.ERROR: float((every["proxy"] - every["utility"]).mean()),
            M.KEPT_PROXY: float(best["proxy"].mean()),
            M.KEPT_UTILITY: float(best["utility"].mean()),
            M.LOSS_SFT: losses["sft"],
            M.LOSS_TOTAL: losses["loss"],
            M.KL_COEF: algo.kl.coef,
            M.BON_N: algo.n,
            M.LENGTH: float(every["tokens"].mean()),
        }
        if algo.kl.coef > 0:
            metrics[M.LOSS_KL] = losses["kl"]
        if not np.isnan(losses["gnorm"]):
            metrics[M.GRAD_NORM] = losses["gnorm"]
        if algo.round_kl_samples:  # the alarm reads this KL (held-out) when it is there
            metrics.update(heldout_kl(sess, model, ref, tok, algo.round_kl_samples, r))
        metrics[M.STEP_SECONDS] = time.perf_counter() - t0
        return metrics

    def load(state: dict) -> None:
        opt_steps[0] = int(state["opt_steps"])

    def row(start: int) -> dict:
        return {
            M.TRAIN_ROUNDS: algo.rounds,
            M.TRAIN_STEPS: opt_steps[0],
            M.RESUMED_FROM: start,
            M.KL_COEF: algo.kl.coef,
            M.BON_N: algo.n,
        }

    return t.run(
        Steps(
            desc="bon-ft",
            unit="round",
            total=algo.rounds,
            step=round_,
            state=lambda: {"opt_steps": opt_steps[0]},
            load=load,
            saves=lambda done: True,  # every round: a round is long
            postfix=lambda m: {"proxy": f"{m[M.PROXY]:.3g}", "kept": f"{m[M.KEPT_PROXY]:.3g}"},
            row=row,
        )
    )
