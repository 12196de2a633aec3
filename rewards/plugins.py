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
        dtype: str = "float32",
        revision: str | None = None,
        trust_remote_code: bool = False,
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = name or f"hf:{path.rstrip('/').split('/')[-1]}"
        device = resolve_device(device)
        load = {"revision": revision, "trust_remote_code": trust_remote_code}  # remote code: off unless set
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        try:
            self.tok = AutoTokenizer.from_pretrained(path, **load)
            self.model = (
                AutoModelForSequenceClassification.from_pretrained(path, dtype=torch_dtype, **load).to(device).eval()
            )
        except (OSError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            hint = (
                ""
                if trust_remote_code or not any(w in str(e) for w in ("trust_remote_code", "custom code"))
                else (" (it ships its own code: set trust_remote_code: true on the reward if you trust it)")
            )
            raise RewardError(f"reward model '{path}' could not be loaded: {first}{hint}") from None
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


def resolve_device(device: str) -> str:
    """`auto` -> cuda when torch sees one, else cpu; an explicit device must exist here."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = device.partition(":")
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (index and int(index) >= n):
            raise RewardError(f"reward device '{device}': torch sees {n} CUDA device(s) here; use cpu or auto")
    elif kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RewardError(f"reward device '{device}': MPS is not available here; use cpu or auto")
    return device


def _import_user_module(module: str) -> Any:
    """import_module, with the current directory importable: `goodhart` runs as a console
    script, whose sys.path does not hold the directory a user's my_reward.py sits in."""
    import os
    import sys

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        top = module.split(".")[0]
        cwd = os.getcwd()
        here = os.path.isfile(os.path.join(cwd, f"{top}.py")) or os.path.isdir(os.path.join(cwd, top))
        if e.name != top or not here or cwd in sys.path:
            raise
        sys.path.insert(0, cwd)
        return importlib.import_module(module)


def load_callable(target: str) -> Any:
    """Import ``package.module:attr`` (attr may be dotted); a module in the current directory is found."""
    module, _, attr = target.partition(":")
    try:
        obj: Any = _import_user_module(module)
    except ImportError as e:
        import os

        hint = (
            f"; put {module.split('.')[0]}.py in the directory you run goodhart from ({os.getcwd()}),"
            " add its folder to PYTHONPATH, or pip install its package"
        )
        raise RewardError(f"reward callable '{target}': cannot import module '{module}' ({e}){hint}") from None
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
