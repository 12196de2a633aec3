"""The trained policy and its frozen reference pi_0.

Full fine-tuning: the policy is a copy of the base model and the reference a second, frozen
copy. LoRA (`lora:` in the algo config): peft adapters on the base model; the same model with
its adapters disabled *is* pi_0, so no second copy is loaded.

`PolicyWithValue` adds PPO's value head. Why a head on the policy's last hidden state rather
than a separate value model: one forward pass yields log-probs and values, the memory cost is
one model (what makes LoRA and big bases affordable), and the value head sees exactly the
features the policy acts on. The price is that value-loss gradients reach the shared trunk;
`vf_coef` weighs them. The head starts at zero, so the first values are 0, not noise.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from goodhart.pipeline.config.schema import LoraSpec, RunConfig
from goodhart.pipeline.train.kl import completion_logits, position_ids, predicting_completion, token_logprobs


class PolicyWithValue(nn.Module):
    """A causal LM plus a linear value head on its final (post-norm) hidden state.

    `forward` is the one training entry point, so DDP / DeepSpeed wrappers see every call."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        hidden = lm.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1, dtype=torch.float32)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, n_prompt: int):
        """-> (logits (B, Tr, V), values (B, Tr)) at the positions that predict completion token t:
        values[:, t] = V(prompt, y_<t), the state in which y_t is chosen."""
        out = self.lm(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            output_hidden_states=True,
            use_cache=False,
        )
        h = predicting_completion(out.hidden_states[-1], n_prompt)  # (B, Tr, H), after the final norm
        logits = predicting_completion(out.logits, n_prompt)  # (B, Tr, V)
        values = self.value_head(h.float()).squeeze(-1)  # (B, Tr)
        return logits, values


class Reference:
    """Log-probs under pi_0: a frozen model, or a peft model with its adapters disabled."""

    def __init__(self, frozen: nn.Module | None = None, adapter_of: nn.Module | None = None):
        if (frozen is None) == (adapter_of is None):
            raise ValueError("Reference needs exactly one of frozen= or adapter_of=")
        self.frozen, self.adapter_of = frozen, adapter_of

    @torch.no_grad()
    def token_logprobs(self, input_ids, attention_mask, n_prompt: int, temperature: float = 1.0):
        """(B, Tr) log pi_0(y_t | prefix); see goodhart.pipeline.train.kl.token_logprobs."""
        if self.frozen is not None:
            return token_logprobs(self.frozen, input_ids, attention_mask, n_prompt, temperature)
        with self.adapter_of.disable_adapter():  # type: ignore[union-attr]
            return token_logprobs(self.adapter_of, input_ids, attention_mask, n_prompt, temperature)

    @torch.no_grad()
    def logits(self, input_ids, attention_mask, n_prompt: int, temperature: float = 1.0) -> torch.Tensor:
        """(B, Tr, V) float32 logits / temperature of pi_0 at the positions that predict completion token t."""
        model = self.frozen if self.frozen is not None else self.adapter_of
        ctx = self.adapter_of.disable_adapter() if self.frozen is None else contextlib.nullcontext()  # type: ignore[union-attr]
        with ctx:
            out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask))
        return completion_logits(out.logits, n_prompt, temperature)

    def to(self, device: Any) -> Reference:
        if self.frozen is not None:
            self.frozen.to(device)
        return self


def load_policy(cfg: RunConfig, lora: LoraSpec | None = None, progress: bool = True, device: Any = None):
    """(trainable causal LM, Reference, tokenizer) from the run's base model.

    With `lora`, the LM is a peft model (adapters trainable, base frozen) and the reference is
    that model with adapters disabled; otherwise the reference is a second, frozen copy.
    `device` (e.g. accelerator.device) overrides model.device, so that each process of a
    multi-GPU launch loads onto its own GPU rather than all onto cuda:0."""
    from goodhart.pipeline.base.models import load_causal_lm

    model_cfg = cfg.model if device is None else cfg.model.model_copy(update={"device": str(device)})
    lm, tok = load_causal_lm(model_cfg, progress=progress)
    if lora is not None:
        from peft import get_peft_model

        lm = get_peft_model(lm, lora_config(lora))
        ref = Reference(adapter_of=lm)
    else:
        frozen, _ = load_causal_lm(model_cfg, progress=False)
        frozen.requires_grad_(False).eval()
        ref = Reference(frozen=frozen)
    return lm, ref, tok


def lora_config(spec: LoraSpec):
    """The peft LoraConfig of a `lora:` block (shared by our trainers and the TRL glue)."""
    from peft import LoraConfig

    return LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules,
        task_type="CAUSAL_LM",
    )


def generation_lm(model: nn.Module) -> nn.Module:
    """The bare causal LM inside a (possibly value-headed) policy, for `generate`."""
    return model.lm if isinstance(model, PolicyWithValue) else model
