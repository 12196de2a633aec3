"""log pi_0(y | prompt): the base policy's log-probability of producing exactly the text y.

The sampler (base/sampling.py) stops at EOS or after `max_new_tokens`. So a completion of
n < max_new_tokens tokens also needs EOS next: log pi_0(y) = sum_t log p(y_t | prompt, y_<t)
+ log p(EOS | prompt, y). With n = max_new_tokens the cap ends it and no EOS term enters;
with n > max_new_tokens the sampler cannot produce y at all (returned as -inf).

Tokens: y is encoded by the base tokenizer's canonical tokenization. Other token paths to the
same text add probability, so this is a lower bound on log pi_0(y), and the mixture KL
computed from it an upper bound (the conservative side). Sampling temperature is applied;
top_p < 1 is not modelled (the README's KL figures assume top_p = 1).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SequenceLogProb:
    logprob: float  # log pi_0(y | prompt), nats (-inf if the sampler cannot produce y)
    tokens: int  # base-tokenizer tokens in y
    eos_term: bool  # whether log p(EOS | prompt, y) is included


def completion_logprob(model, tok, prompt: str, completion: str, max_new_tokens: int, temperature: float = 1.0):
    """log pi_0(completion | prompt) under the base model as the sampler draws from it."""
    import torch

    from goodhart.pipeline.train.kl import completion_logits, logprobs_of  # the one slice of the logits

    p_ids = tok(prompt)["input_ids"]
    c_ids = tok(completion, add_special_tokens=False)["input_ids"]
    n = len(c_ids)
    if n > max_new_tokens:
        return SequenceLogProb(float("-inf"), n, False)
    eos = n < max_new_tokens
    targets = c_ids + ([tok.eos_token_id] if eos else [])
    ids = torch.tensor([p_ids + targets], device=model.device)  # (1, P + n [+ 1])
    with torch.inference_mode():
        logits = completion_logits(model(input_ids=ids).logits, len(p_ids), temperature)  # predicts each target
        picked = logprobs_of(logits, ids[:, len(p_ids) :])  # (1, n [+ 1])
    return SequenceLogProb(float(picked.sum()), n, eos)
