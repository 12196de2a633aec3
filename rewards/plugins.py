"""Rewards from outside the project: a Hugging Face classifier, a callable, an entry point."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from goodhart.rewards.base import Reward, RewardError, as_reward, checked

ENTRY_POINT_GROUP = "goodhart.rewards"


class HFClassifierReward:
    """One logit of an AutoModelForSequenceClassification checkpoint, batched, no grad."""

    def __init__(
        self,
        path: str,
        label: int = 0,
        batch_size: int = 32,
        max_length: int = 256,
        device: str = "auto",
        include_prompt: bool = True,
        name: str | None = None,
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = name or f"hf:{path.rstrip('/').split('/')[-1]}"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.tok = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        except (OSError, ValueError) as e:
            raise RewardError(f"reward model '{path}' could not be loaded: {str(e).splitlines()[0]}") from None
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model.config.pad_token_id = self.tok.pad_token_id
        n_labels = self.model.config.num_labels
        if not 0 <= label < n_labels:
            raise RewardError(f"reward model '{path}' has {n_labels} label(s); label={label} is out of range")
        self.label, self.batch_size, self.max_length = label, batch_size, max_length
        self.device, self.include_prompt = device, include_prompt

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        import torch

        texts = [p + c for p, c in zip(prompts, completions)] if self.include_prompt else list(completions)
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tok(
                    texts[i : i + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                ).to(self.device)
                logits = self.model(**enc).logits  # (B, num_labels)
                out.append(logits[:, self.label].float().cpu().numpy())
        return checked(self.name, np.concatenate(out) if out else np.zeros(0), prompts, completions)


def load_callable(target: str) -> Any:
    """Import ``package.module:attr`` (attr may be dotted)."""
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise RewardError(f"reward callable '{target}': cannot import module '{module}' ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RewardError(f"reward callable '{target}': module '{module}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise RewardError(f"reward callable '{target}' is not callable")
    return obj


def callable_reward(target: str, kwargs: dict[str, Any] | None = None) -> Reward:
    from goodhart.rewards.base import FunctionReward

    return FunctionReward(load_callable(target), name=target.split(":")[-1], **(kwargs or {}))


def plugin_reward(name: str, kwargs: dict[str, Any] | None = None) -> Reward:
    """A reward from the ``goodhart.rewards`` entry-point group: ``factory(**kwargs)``."""
    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise RewardError(f"no reward plug-in named '{name}' in entry-point group {ENTRY_POINT_GROUP} (found: {known})")
    factory = eps[name].load()
    return as_reward(factory(**(kwargs or {})), name)
