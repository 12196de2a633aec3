"""The one KL measurement for every trained optimizer: KL(pi || pi_0) on samples drawn from pi.

For a completion y = (y_1 .. y_T) of prompt x, sampled from pi, and per token

    r_t = log pi(y_t | x, y_<t) - log pi_0(y_t | x, y_<t)

the two unbiased per-token estimators (Schulman, "Approximating KL divergence") are

    k1_t = r_t                        unbiased, can be negative
    k3_t = exp(-r_t) - 1 + r_t        unbiased, >= 0, lower variance

and the sequence-level KL is the sum over the completion's tokens. A completion runs up to
and including its first EOS (EOS is a token the policy chose); padding and anything after EOS
are masked out. What every trained point reports as `kl` is the mean over held-out samples
of the summed k1 (estimator name ``seq_k1``): E_pi[sum_t r_t] = KL(pi || pi_0) exactly.
`kl/k1` and `kl/k3` are per-token means (summed estimator / completion tokens), for
comparison with trainers that penalise per token.

Also here, for every trained optimizer: which logits predict a completion token
(`completion_logits`), token log-probs (`logprobs_of`), `masked_mean`, and the KL coefficient
controller (fixed, or adaptive toward a target KL).
"""

from __future__ import annotations

from typing import Any

import numpy as np

KL_ESTIMATOR = "seq_k1"
"""Name of the estimator behind every trained point's `kl`: mean of sequence-summed k1."""


# ============================================================================================
# Masks and log-probs: the one home of the completion slice, token log-probs and masked means
# ============================================================================================
def completion_mask(response, eos_id: int):
    """1 for every completion token up to and including the first EOS, 0 after it. (B, T) -> (B, T) long.

    Works whether pad == eos or not: generation pads only after a sequence's EOS."""
    import torch

    is_eos = (response == eos_id).long()
    eos_before = torch.cumsum(is_eos, -1) - is_eos  # EOS tokens strictly before t
    return (eos_before == 0).long()


def position_ids(attention_mask):
    """Positions that skip left padding, as `generate` computes them: cumsum(mask) - 1."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def predicting_completion(x, n_prompt: int):
    """(B, Tq + Tr, ...) -> (B, Tr, ...): the positions whose outputs predict the completion tokens.

    Position j's output predicts token j + 1, so completion token t (at Tq + t) is predicted at
    Tq + t - 1: the slice [Tq - 1, Tq + Tr - 1). The one place this off-by-one is written."""
    return x[:, n_prompt - 1 : -1]


def completion_logits(logits, n_prompt: int, temperature: float = 1.0):
    """(B, Tq + Tr, V) model logits -> (B, Tr, V) float32 logits / temperature that predict y_t.

    Divided by `temperature`: sampled at temperature tau, pi is the tempered policy, and its
    reference is the tempered pi_0 (tau = 1 compares the models themselves)."""
    return predicting_completion(logits, n_prompt).float() / temperature


def logprobs_of(logits, tokens):
    """(B, T, V) logits, (B, T) token ids -> (B, T) log softmax(logits)[token]."""
    import torch

    return logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)


def token_logprobs(model, input_ids, attention_mask, n_prompt: int, temperature: float = 1.0):
    """log p(y_t | prefix) of each completion token under `model`.

    input_ids: (B, Tq + Tr) = left-padded prompts (Tq = n_prompt) then completions.
    attention_mask: same shape (prompt padding and post-EOS positions 0).
    Returns (B, Tr), under the tempered model (see completion_logits).
    """
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask))
    return logprobs_of(completion_logits(out.logits, n_prompt, temperature), input_ids[:, n_prompt:])  # (B, Tr)


def masked_mean(x, mask):
    """Mean of x over the positions where mask is 1 (0 for an empty mask). Same shapes."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


# ============================================================================================
# Estimators
# ============================================================================================
def per_token_kl(logp, ref_logp, mask, estimator: str = "k1"):
    """k1 or k3 per completion token, zero where mask is 0. All (B, T)."""
    import torch

    r = (logp - ref_logp) * mask  # k1: log pi - log pi_0
    if estimator == "k1":
        return r
    if estimator == "k3":
        return (torch.expm1(-r) + r) * mask  # k3: exp(-r) - 1 + r
    raise ValueError(f"unknown KL estimator {estimator!r}; expected k1 or k3")


def sequence_kl(logp, ref_logp, mask) -> dict[str, Any]:
    """Per-sequence sums: {"k1": (B,), "k3": (B,), "tokens": (B,)} as float64 numpy arrays."""
    mask = mask.to(logp.dtype)
    k1 = per_token_kl(logp, ref_logp, mask, "k1").sum(-1)
    k3 = per_token_kl(logp, ref_logp, mask, "k3").sum(-1)
    as_np = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    return {"k1": as_np(k1), "k3": as_np(k3), "tokens": as_np(mask.sum(-1))}


def kl_metrics(seq: dict[str, Any]) -> dict[str, float]:
    """`kl` (mean sequence k1), `kl/k1`, `kl/k3` (per-token means) from sequence_kl output
    (possibly concatenated over batches or processes)."""
    from goodhart.eval import metrics as M

    n = float(np.sum(seq["tokens"]))
    return {
        M.KL: float(np.mean(seq["k1"])),  # seq_k1: unbiased sequence KL
        M.KL_K1: float(np.sum(seq["k1"]) / n) if n else 0.0,
        M.KL_K3: float(np.sum(seq["k3"]) / n) if n else 0.0,
    }


def concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate sequence_kl outputs."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ============================================================================================
# The KL coefficient
# ============================================================================================
class KLController:
    """beta in the reward -beta * KL. Fixed when `target` is None; otherwise the adaptive rule of
    Ziegler et al. 2019 (proportional control in log space, error clipped to +-0.2):

        e = clip(KL / target - 1, -0.2, 0.2)
        beta <- beta * (1 + e * n / horizon)       n: samples in the batch just measured
    """

    def __init__(self, coef: float, target: float | None = None, horizon: int = 10000):
        self.coef, self.target, self.horizon = float(coef), target, horizon

    def update(self, kl: float, n: int) -> float:
        """Feed the batch's measured sequence KL (nats) and its sample count; returns beta."""
        if self.target is not None:
            err = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
            self.coef *= 1.0 + err * n / self.horizon
        return self.coef

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coef = float(state["coef"])
