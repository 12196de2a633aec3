"""The same commit gives the same numbers: the tiny model's build is bit-identical across
processes and thread counts (its thread count is fixed, tiny_model.BUILD_THREADS), and so is
sampling from it. What was measured before the fix is in docs/reliability.md."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from goodhart.pipeline.base.tiny_model import TinyRecipe, ensure_tiny_model

MINI = dict(hidden=64, layers=2, heads=2, n_sentences=1000, steps=20, batch=32, vocab_size=320)


def weights_digest(d: Path) -> str:
    return hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()


def test_builds_under_different_thread_counts_give_identical_weights(tmp_path):
    import torch

    digests = []
    old = torch.get_num_threads()
    try:
        for i, threads in enumerate((1, 2)):
            torch.set_num_threads(threads)  # what the caller's OMP_NUM_THREADS would give
            digests.append(weights_digest(ensure_tiny_model(tmp_path / f"c{i}", TinyRecipe(**MINI), progress=False)))
    finally:
        torch.set_num_threads(old)
    assert digests[0] == digests[1]


BUILD = """
import hashlib, sys
from pathlib import Path
from goodhart.pipeline.base.tiny_model import TinyRecipe, ensure_tiny_model
d = ensure_tiny_model(Path(sys.argv[1]), TinyRecipe(**{mini}), progress=False)
print(hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest())
"""


@pytest.mark.slow
def test_builds_in_separate_processes_with_different_omp_threads_are_identical(tmp_path):
    out = []
    for i, threads in enumerate(("1", "2")):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        r = subprocess.run(
            [sys.executable, "-c", BUILD.format(mini=MINI), str(tmp_path / f"p{i}")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr
        out.append(r.stdout.strip().splitlines()[-1])
    assert out[0] == out[1]


def test_sampling_is_identical_under_different_thread_counts(small_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from goodhart.pipeline.base.corpus import builtin_prompts
    from goodhart.pipeline.base.sampling import sample_completions
    from goodhart.pipeline.config.schema import SamplingConfig

    tok = AutoTokenizer.from_pretrained(small_model_dir)
    model = AutoModelForCausalLM.from_pretrained(small_model_dir).eval()
    prompts = builtin_prompts(6, seed=0)
    got = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got.append(sample_completions(model, tok, prompts, 4, SamplingConfig(max_new_tokens=16), 0, False))
    finally:
        torch.set_num_threads(old)
    assert got[0] == got[1]
