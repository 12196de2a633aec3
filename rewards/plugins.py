"""Rewards from outside the project: a Hugging Face classifier, a callable, an entry point."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
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
        if not Path(path).expanduser().exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
            # Not a hub id ('name' or 'namespace/name'): a local checkpoint that is not there.
            raise RewardError(
                f"reward model '{path}': no such directory (a local checkpoint, or a hub id 'namespace/name')"
            )
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
        # Batches of texts of similar length (sorted by characters, a close stand-in for tokens):
        # each pads to its own longest text, not to the longest of a random batch. Scores go back
        # in the input order.
        order = np.argsort(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), kind="stable")
        out = np.zeros(len(texts), dtype=np.float64)
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                idx = order[i : i + self.batch_size]
                enc = self.tok(
                    [texts[j] for j in idx],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                ).to(self.device)
                logits = self.model(**enc).logits  # (B, num_labels)
                out[idx] = logits[:, self.label].float().cpu().numpy()
        return checked(self.name, out, prompts, completions)


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
    factory = plugin_entry(name).load()
    return as_reward(factory(**(kwargs or {})), name)


def plugin_entry(name: str) -> Any:
    """The installed entry point of plug-in `name`; RewardError (one line) when none is installed."""
    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise RewardError(f"no reward plug-in named '{name}' in entry-point group {ENTRY_POINT_GROUP} (found: {known})")
    return eps[name]


# ---------------------------------------------------------------------------------------------
# Identities: what a reward *is*, for cache keys. The config names a reward (a path, an import
# path, a plug-in name); the identity changes when what scores changes: new weights at the same
# path, an edited function, a new plug-in release.
# ---------------------------------------------------------------------------------------------
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file's content (memoised per path, size and mtime within a process)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def checkpoint_identity(path: str) -> str:
    """A local checkpoint directory: a hash of every file's name and content (weights, config,
    tokenizer). A hub id: the commit of its cached snapshot (the id alone when none is cached)."""
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(x for x in p.rglob("*") if x.is_file() and not x.name.startswith(".")):
            h.update(f"{f.relative_to(p)}:{file_digest(f)}\n".encode())
        return f"dir:{h.hexdigest()[:24]}"
    if p.is_file():
        return f"file:{file_digest(p)[:24]}"
    try:
        from huggingface_hub import snapshot_download

        snap = Path(snapshot_download(repo_id=path, local_files_only=True))
        return f"hub:{path}@{snap.name}"
    except Exception:  # not cached yet, or not a hub id: loading will say so
        return f"hub:{path}"


def source_identity(obj: Any) -> str:
    """An explicit `version` (or `__version__`) attribute when the object has one, else a hash of
    the source of the module that defines it (or of the object alone when the module has none)."""
    version = getattr(obj, "version", None) or getattr(obj, "__version__", None)
    if isinstance(version, (str, int, float)):
        return f"version:{version}"
    for thing in (inspect.getmodule(obj), obj):
        try:
            src = inspect.getsource(thing)  # type: ignore[arg-type]
            return f"source:{hashlib.sha256(src.encode()).hexdigest()[:24]}"
        except (OSError, TypeError):
            continue
    return f"unknown:{getattr(obj, '__qualname__', type(obj).__name__)}"


def callable_identity(target: str) -> str:
    return f"{target}|{source_identity(load_callable(target))}"


def plugin_identity(name: str) -> str:
    """Entry-point name, the distribution that provides it and its version, and the factory's source."""
    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in eps:
        return f"plugin:{name}"  # building it will raise the clear error
    ep = eps[name]
    dist = getattr(ep, "dist", None)
    release = f"{dist.name}=={dist.version}" if dist is not None else "?"
    return f"plugin:{name}|{release}|{source_identity(ep.load())}"
