"""`ppo`: our own compact PPO for causal LMs (Schulman et al. 2017; as in Ziegler et al. 2019).

Each step, for B sampled completions y of prompts x (T_b tokens each, EOS included):

    rewards   r_t = -beta * kl_t  (+ proxy(x, y) at the last token)     kl_t: k1 or k3 (algo.kl.estimator)
    GAE       delta_t = r_t + gamma V_{t+1} - V_t,   A_t = sum_l (gamma lam)^l delta_{t+l},  R_t = A_t + V_t
    policy    L_pi = E_t max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps)),   rho_t = pi(y_t) / pi_old(y_t)
    value     L_V  = 1/2 E_t max((V - R)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - R)^2)
    loss      L_pi + vf_coef L_V,  advantages whitened,  ppo_epochs passes over minibatches

Each line is a pure function below (token_rewards, gae, advantages, policy_loss, value_loss),
pinned by hand-computed tests in tests/test_ppo_loss.py; so is one whole `ppo_step` that wires them.

beta is fixed, or adaptive toward a target KL (goodhart.pipeline.train.kl.KLController). The value function
is a linear head on the policy's last hidden state (goodhart.pipeline.train.policy says why). Nothing
is clipped or clamped unless configured: a heavy-tailed proxy reaches the policy as it is.

Runs under `accelerate launch` unchanged: the model and optimizer are `prepare`d, losses go
through `accelerator.backward`, generation uses the unwrapped model, metrics are gathered.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from goodhart.eval import metrics as M
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput
from goodhart.pipeline.train import (
    PolicyWithValue,
    TrainSession,
    preemption,
    sample_rollout,
    score_rollout,
    unwrapped_for_generation,
)
from goodhart.pipeline.train.kl import (
    KLController,
    kl_metrics,
    logprobs_of,
    masked_mean,
    per_token_kl,
    sequence_kl,
)
from goodhart.pipeline.train.loop import Steps, Training


# ============================================================================================
# The PPO loss, term by term: pure functions of tensors, each pinned by a hand-computed test
# (tests/test_ppo_loss.py, which also checks that each mutation in its list is caught)
# ============================================================================================
def token_rewards(kl_t: torch.Tensor, beta: float, score: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """r_t = -beta * kl_t on every completion token, plus the sequence's score on its last one.
    kl_t, mask: (B, T); score: (B,). The last token is EOS when the completion has one."""
    rewards = -beta * kl_t * mask
    last = mask.sum(1).long() - 1  # index of each completion's last token
    rewards[torch.arange(len(score)), last] += score
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalized advantage estimation over completion tokens. All (B, T); rewards and values are
    zero past each completion's end, so V after the last token is 0 and nothing leaks back.
    Returns (advantages A_t, returns R_t = A_t + V_t)."""
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_v = values[:, t + 1] if t + 1 < T else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_v - values[:, t]  # delta_t = r_t + gamma V_{t+1} - V_t
        running = delta + gamma * lam * running  # A_t = delta_t + gamma lam A_{t+1}
        adv[:, t] = running
    adv = adv * mask
    return adv, (adv + values) * mask


def whiten(x: torch.Tensor, mask: torch.Tensor, reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """(x - mean) / std over the masked tokens, 0 elsewhere; std with Bessel's correction.
    `reduce_sum` sums the statistics over processes (None: this process is all there is)."""
    stats = torch.stack([(x * mask).sum(), (x * x * mask).sum(), mask.sum()])
    s, ss, n = reduce_sum(stats) if reduce_sum is not None else stats
    mean = s / n
    var = (ss / n - mean**2).clamp(min=0) * n / (n - 1).clamp(min=1)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def advantages(rewards, values, mask, gamma: float, lam: float, reduce_sum=None):
    """(whitened GAE advantages, returns): what the policy and value losses are trained on. All (B, T)."""
    adv, returns = gae(rewards, values, mask, gamma, lam)
    return whiten(adv, mask, reduce_sum), returns


def policy_loss(logp, old_logp, adv, mask, clip_range: float):
    """L_pi = E_t max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps)), rho_t = pi(y_t) / pi_old(y_t):
    the pessimistic (larger) of the two losses, so a token gains nothing by moving rho past 1 +- eps.
    All (B, T). Returns (loss, rho)."""
    ratio = torch.exp((logp - old_logp) * mask)  # rho_t
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - clip_range, 1 + clip_range)
    return masked_mean(torch.max(unclipped, clipped), mask), ratio


def value_loss(v, old_v, returns, mask, clip_range_value: float | None):
    """L_V = 1/2 E_t max((V - R)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - R)^2); without
    `clip_range_value`, 1/2 E_t (V - R)^2. All (B, T)."""
    err = (v - returns) ** 2
    if clip_range_value is None:
        return 0.5 * masked_mean(err, mask)
    v_clipped = old_v + (v - old_v).clamp(-clip_range_value, clip_range_value)
    return 0.5 * masked_mean(torch.max(err, (v_clipped - returns) ** 2), mask)


def entropy_of(logits: torch.Tensor) -> torch.Tensor:
    """(B, T, V) -> (B, T) entropy of softmax(logits) in nats."""
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


# ============================================================================================
# One PPO iteration
# ============================================================================================
def ppo_step(step: int, sess: TrainSession, model, ref, tok, opt, kl_ctl: KLController) -> dict[str, float]:
    cfg, algo, acc = sess.ctx.cfg, sess.ctx.cfg.algo, sess.accelerator
    temp = cfg.sampling.temperature
    t0 = time.perf_counter()

    # ---- 1. rollout: sample from the current policy, score with proxy (and utility, logged only)
    prompts = sess.train_prompts(algo.batch_prompts, step)
    with unwrapped_for_generation(acc, model) as bare:
        ro = sample_rollout(bare.lm, tok, prompts, algo.samples_per_prompt, cfg.sampling, with_logprobs=False)
    scores = score_rollout(sess.scorer, ro)
    B, mask = len(ro), ro.response_mask.float()  # mask: (B, T)
    ids, am, n_prompt = ro.input_ids, ro.attention_mask, ro.n_prompt

    # ---- 2. log-probs and values of the rollout policy; reference log-probs
    model.eval()
    with torch.no_grad():
        old_logp, old_v = [], []
        for mb in torch.arange(B).split(algo.minibatch):
            logits, v = model(ids[mb], am[mb], n_prompt)
            old_logp.append(logprobs_of(logits.float() / temp, ro.response[mb]))
            old_v.append(v)
        old_logp, old_v = torch.cat(old_logp) * mask, torch.cat(old_v) * mask  # (B, T)
        ref_logp = ref.token_logprobs(ids, am, n_prompt, temp) * mask  # (B, T)

    # ---- 3. per-token rewards: KL penalty on every token, the proxy on the last one
    kl_t = per_token_kl(old_logp, ref_logp, mask, algo.kl.estimator)  # (B, T)
    extra: dict[str, float] = {}
    if algo.kl.clamp is not None:
        c = algo.kl.clamp
        extra[M.KL_CLAMPED] = float(masked_mean((kl_t.abs() > c).float(), mask))
        kl_t = kl_t.clamp(-c, c)
    beta = kl_ctl.coef
    proxy = torch.as_tensor(scores["proxy"], dtype=kl_t.dtype, device=kl_t.device)  # (B,)
    rewards = token_rewards(kl_t, beta, proxy, mask)

    # ---- 4. advantages (whitened over all processes' tokens) and returns
    adv, returns = advantages(rewards, old_v, mask, algo.gamma, algo.lam, lambda t: acc.reduce(t, "sum"))

    # ---- 5. PPO epochs over shuffled minibatches; diagnostics under their metric names (eval.metrics)
    model.train()
    per_mb = (
        M.LOSS_POLICY,
        M.LOSS_VALUE,
        M.LOSS_TOTAL,
        M.ENTROPY,
        M.APPROX_KL,
        M.CLIPFRAC,
        M.VALUE_CLIPFRAC,
        M.GRAD_NORM,
    )
    stats: dict[str, list[float]] = {k: [] for k in per_mb}
    for _ in range(algo.ppo_epochs):
        for mb in torch.randperm(B).split(algo.minibatch):
            m = mask[mb]
            logits, v = model(ids[mb], am[mb], n_prompt)
            logits = logits.float() / temp
            logp = logprobs_of(logits, ro.response[mb])
            pg_loss, ratio = policy_loss(logp, old_logp[mb], adv[mb], m, algo.clip_range)
            vf_loss = value_loss(v, old_v[mb], returns[mb], m, algo.clip_range_value)
            if algo.clip_range_value is not None:
                vclip = masked_mean(((v - old_v[mb]).abs() > algo.clip_range_value).float(), m)
                stats[M.VALUE_CLIPFRAC].append(vclip.item())
            loss = pg_loss + algo.vf_coef * vf_loss
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            if algo.max_grad_norm is not None:
                gnorm = acc.clip_grad_norm_(model.parameters(), algo.max_grad_norm)
                if gnorm is not None:
                    stats[M.GRAD_NORM].append(float(gnorm))
            opt.step()
            with torch.no_grad():
                stats[M.LOSS_POLICY].append(pg_loss.item())
                stats[M.LOSS_VALUE].append(vf_loss.item())
                stats[M.LOSS_TOTAL].append(loss.item())
                stats[M.ENTROPY].append(masked_mean(entropy_of(logits), m).item())
                stats[M.APPROX_KL].append(masked_mean((ratio - 1) - torch.log(ratio), m).item())  # k3 of KL(old||new)
                stats[M.CLIPFRAC].append(masked_mean(((ratio - 1).abs() > algo.clip_range).float(), m).item())

    # ---- 6. metrics over all processes; the KL controller sees the whole batch's KL
    seq = sequence_kl(old_logp, ref_logp, mask)
    seq = {k: sess.gather_array(v) for k, v in seq.items()}
    proxy_all, util_all = sess.gather_array(scores["proxy"]), sess.gather_array(scores["utility"])
    klm = kl_metrics(seq)  # kl = mean sequence k1 of the training batch (seq_k1)
    kl_ctl.update(klm[M.KL], len(proxy_all))
    # every process sends every key (an empty list is NaN) so the reduction lines up across them
    local = torch.tensor([float(np.mean(v)) if v else float("nan") for v in stats.values()], device=acc.device)
    means = dict(zip(stats, acc.reduce(local, "mean").tolist()))
    metrics = {
        M.PROXY: float(proxy_all.mean()),
        M.UTILITY: float(util_all.mean()),
        M.ERROR: float((proxy_all - util_all).mean()),
        **klm,
        M.KL_COEF: beta,
        M.OBJECTIVE: float(proxy_all.mean() - beta * klm[M.KL]),
        **{k: means[k] for k in per_mb if stats[k]},  # value clipfrac / grad norm only when configured
        M.LENGTH: float(seq["tokens"].mean()),
        M.STEP_SECONDS: time.perf_counter() - t0,
        **extra,
    }
    if scores["clipped_fraction"] is not None:
        metrics[M.REWARD_CLIPPED] = float(scores["clipped_fraction"])
    return metrics


# ============================================================================================
# The optimizer: set up, resume, train, checkpoint, evaluate
# ============================================================================================
def run(ctx: PointContext) -> PointOutput:
    with preemption.handled():  # SIGUSR1 / SIGTERM: checkpoint at the end of the step, then exit 75
        return _train_and_evaluate(ctx)


def _train_and_evaluate(ctx: PointContext) -> PointOutput:
    algo = ctx.cfg.algo
    t = Training.start(ctx, wrap=PolicyWithValue)
    kl_ctl = KLController(algo.kl.coef, algo.kl.target, algo.kl.horizon)
    every = algo.checkpoint_every

    def row(start: int) -> dict:
        out = {M.TRAIN_STEPS: algo.steps, M.RESUMED_FROM: start, M.KL_COEF: kl_ctl.coef}
        out[M.KL_REWARD_ESTIMATOR] = algo.kl.estimator
        if algo.kl.target is not None:
            out[M.KL_TARGET] = algo.kl.target
        return out

    return t.run(
        Steps(
            desc="ppo",
            unit="step",
            total=algo.steps,
            step=lambda i: ppo_step(i, t.sess, t.model, t.ref, t.tok, t.opt, kl_ctl),
            state=lambda: {"kl_ctl": kl_ctl.state_dict()},  # resume with the adaptive coefficient where it was
            load=lambda state: kl_ctl.load_state_dict(state["kl_ctl"]),
            saves=lambda done: bool(every) and (done % every == 0 or done == algo.steps),
            postfix=lambda m: {"proxy": f"{m[M.PROXY]:.3g}", "kl": f"{m[M.KL]:.3g}"},
            row=row,
        )
    )
