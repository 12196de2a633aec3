"""The one loader for base models: the built-in tiny model or any Hugging Face causal LM."""

from __future__ import annotations

import os
from pathlib import Path

from goodhart.pipeline.config.schema import ModelConfig


def looks_local(path: str) -> bool:
    """A path that cannot be a hub id ('name' or 'namespace/name')."""
    return path.startswith((".", "/", "~")) or path.count("/") > 1 or "\\" in path


PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, read as huggingface_hub reads it."""
    return any(os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE") for k in OFFLINE_VARS)


def _hub_unreachable(endpoint: str, timeout: float = 3.0) -> str | None:
    """Why a TCP connection to the hub fails (None: it connects, or a proxy is set and may reach it)."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(k) for k in PROXY_VARS):
        return None  # the proxy may reach what a direct connection cannot: let the download try
    u = urlsplit(endpoint)
    host, port = u.hostname or "", u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"
    return None


def checkpoint_problem(path: str, key: str, revision: str | None = None) -> str | None:
    """Why the checkpoint `path` (a local directory or a hub id) cannot be loaded, found in a
    second or two before any work, instead of after Hugging Face's retries (~40 s): a local path
    that is not there, or a hub id not in the local Hugging Face cache while the hub is off
    (HF_HUB_OFFLINE=1) or unreachable. None: it can be loaded, or only trying will tell."""
    if Path(path).expanduser().exists():
        return None
    if looks_local(path):
        return f"{key} {path}: no such directory (a local checkpoint, or a hub id 'namespace/name')"
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(path, "config.json", revision=revision)
    except Exception as e:  # HFValidationError: not a repo id at all
        return f"{key} {path}: neither a local directory nor a hub id 'namespace/name' ({str(e)[:80]})"
    if isinstance(hit, str):
        return None
    where = f"not a local directory and not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    fix = f"download it once where the hub is reachable (`hf download {path}`), or give a local directory"
    if hub_offline():
        return f"{key} {path}: {where}, and HF_HUB_OFFLINE=1 forbids the hub: {fix}"
    endpoint = os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")
    why = _hub_unreachable(endpoint)
    if why:
        return f"{key} {path}: {where}, and the hub ({endpoint}) is unreachable ({why}): {fix}"
    return None


def check_checkpoint(path: str, key: str, revision: str | None = None) -> None:
    """ConfigError (one line) when checkpoint_problem finds one."""
    why = checkpoint_problem(path, key, revision)
    if why:
        from goodhart.pipeline.errors import ConfigError

        raise ConfigError(why)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from goodhart.pipeline.errors import ConfigError

        raise ConfigError(f"device '{device}': this machine has no CUDA device (use device: auto or cpu)")
    return device


def model_path(cfg: ModelConfig, progress: bool = True) -> str:
    """A local directory (tiny: built on first use) or the user's hub id."""
    if cfg.name == "tiny":
        from goodhart.pipeline.base.tiny_model import ensure_tiny_model

        return str(ensure_tiny_model(progress=progress))
    if cfg.name == "smollm2-135m":
        from goodhart.pipeline.base.smollm2 import ensure_smollm2

        return str(ensure_smollm2(progress=progress))
    if cfg.name == "minilm-l6":
        from goodhart.pipeline.base.encoders import minilm_dir

        return str(minilm_dir())
    assert cfg.path is not None
    return cfg.path


def model_identity(cfg: ModelConfig) -> str:
    """What names this base policy in cache keys (tiny: its recipe hash)."""
    if cfg.name == "tiny":
        from goodhart.pipeline.base.tiny_model import TinyRecipe

        return f"tiny-{TinyRecipe().recipe_hash()}"
    if cfg.name == "smollm2-135m":
        from goodhart.pipeline.base.smollm2 import converted_dir

        return converted_dir().name
    if cfg.name == "minilm-l6":
        from goodhart.pipeline.base.encoders import minilm_identity

        return minilm_identity()
    p = Path(cfg.path or "")
    return str(p.resolve()) if p.exists() else str(cfg.path)


def load_causal_lm(cfg: ModelConfig, progress: bool = True):
    """(model in eval mode on its device, tokenizer with left padding and a pad token)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the per-load "Loading weights" bar
    path = model_path(cfg, progress)
    if cfg.name == "path":
        check_checkpoint(path, "model.path")  # not after Hugging Face's retries
    try:
        tok = AutoTokenizer.from_pretrained(path)
        dtype = getattr(torch, cfg.dtype)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except Exception as e:  # OSError, ValueError, SafetensorError, UnpicklingError, ...: a load boundary
        # e.g. pickled weights torch.load(weights_only=True) refuses, a torn safetensors file,
        # a directory that is not a causal LM: name the path, not transformers' internals
        from goodhart.pipeline.errors import ConfigError

        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(
            f"model.path '{path}' could not be loaded as a causal LM ({type(e).__name__}: {first})"
        ) from None
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = model.to(resolve_device(cfg.device)).eval()
    return model, tok


def uses_chat_template(cfg: ModelConfig) -> bool:
    return cfg.chat_template if cfg.chat_template is not None else cfg.name == "smollm2-135m"


def format_prompts(cfg: ModelConfig, prompts: list[str]) -> list[str]:
    """Prompts as the policy sees them: each wrapped in the tokenizer's chat template (one user
    turn, generation prompt added) when `uses_chat_template`, else unchanged. The wrapped text is
    the prompt everywhere after this (sampling, training, `prompt + completion` for rewards)."""
    if not uses_chat_template(cfg):
        return list(prompts)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path(cfg, progress=False))
    if not getattr(tok, "chat_template", None):
        from goodhart.pipeline.errors import ConfigError

        raise ConfigError(
            f"model.chat_template is on but the tokenizer of '{model_path(cfg, False)}' has no chat template"
        )
    return [
        tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
