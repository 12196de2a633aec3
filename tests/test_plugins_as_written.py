"""Plug-ins as users write them: a `my_reward.py` in the directory goodhart runs in, found by the
console script; HF reward models with dtype, device, revision, max length and batch size, and
remote code off unless set. Real checkpoints built from the small test model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from goodhart.pipeline.base.scoring import build_reward
from goodhart.pipeline.config.load import configs_dir, load_config
from goodhart.rewards.base import RewardError
from goodhart.rewards.plugins import HFClassifierReward, load_callable

CUSTOM_CODE = """
from transformers import AutoModel, LlamaConfig, LlamaForSequenceClassification, LlamaModel


class ShoutConfig(LlamaConfig):
    model_type = "goodhart_shout"


class ShoutBase(LlamaModel):
    config_class = ShoutConfig


AutoModel.register(ShoutConfig, ShoutBase, exist_ok=True)  # the classification head builds its body by AutoModel


class ShoutModel(LlamaForSequenceClassification):
    config_class = ShoutConfig
"""


@pytest.fixture(scope="module")
def classifier_dir(small_model_dir, tmp_path_factory) -> Path:
    """A real sequence-classification checkpoint (2 labels) with the small model's tokenizer."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    out = tmp_path_factory.mktemp("clf")
    cfg = AutoConfig.from_pretrained(small_model_dir)
    cfg.num_labels = 2
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(small_model_dir).save_pretrained(out)
    return out


def test_hf_reward_options_reach_the_model(classifier_dir):
    r32 = HFClassifierReward(str(classifier_dir), label=1, batch_size=3, max_length=8, device="cpu")
    assert next(r32.model.parameters()).dtype == torch.float32
    rbf = HFClassifierReward(str(classifier_dir), label=1, device="auto", dtype="bfloat16")
    assert next(rbf.model.parameters()).dtype == torch.bfloat16
    prompts, comps = ["a"] * 5, ["the cat sat on the mat and then " * 4, "hi", "ok then", "the", "a b c"]
    s = r32.score(prompts, comps)
    assert s.shape == (5,) and np.isfinite(s).all()
    # max_length truncates: the long text scores as its first 8 tokens do
    tok = r32.tok
    ids = tok(prompts[0] + comps[0], truncation=True, max_length=8)["input_ids"]
    head = tok.decode(ids, skip_special_tokens=True)
    assert r32.score([""], [head])[0] == pytest.approx(s[0], abs=1e-4)
    # batch size does not change the numbers
    assert np.allclose(
        HFClassifierReward(str(classifier_dir), label=1, max_length=8, batch_size=1).score(prompts, comps), s, atol=1e-5
    )


def test_config_carries_the_options_and_checks_the_device(classifier_dir):
    cfg = load_config(
        str(configs_dir() / "base.yaml"),
        [
            f"reward={{type: hf, path: {classifier_dir}, label: 1, dtype: bfloat16, revision: main, max_length: 16}}",
            "utility=same",
        ],
    )
    assert cfg.reward.dtype == "bfloat16" and cfg.reward.revision == "main" and cfg.reward.trust_remote_code is False
    r = build_reward(cfg.reward)  # a local directory: the revision is recorded, nothing is fetched
    assert next(r.model.parameters()).dtype == torch.bfloat16 and r.max_length == 16
    if not torch.cuda.is_available():
        with pytest.raises(RewardError, match="reward device 'cuda:0': torch sees 0 CUDA device"):
            HFClassifierReward(str(classifier_dir), device="cuda:0")
    from goodhart.pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="reward.device"):
        load_config(
            str(configs_dir() / "base.yaml"),
            [f"reward={{type: hf, path: {classifier_dir}, device: gpu}}", "utility=same"],
        )


def test_remote_code_is_off_unless_set(classifier_dir, tmp_path):
    import json
    import shutil

    d = tmp_path / "custom"
    shutil.copytree(classifier_dir, d)
    (d / "shout_model.py").write_text(CUSTOM_CODE)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "goodhart_shout"
    cfg["auto_map"] = {
        "AutoConfig": "shout_model.ShoutConfig",
        "AutoModelForSequenceClassification": "shout_model.ShoutModel",
    }
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RewardError, match="set trust_remote_code: true on the reward if you trust it"):
        HFClassifierReward(str(d), label=1)
    r = HFClassifierReward(str(d), label=1, trust_remote_code=True)
    assert type(r.model).__name__ == "ShoutModel" and np.isfinite(r.score(["a"], ["b"])).all()


def test_a_module_in_the_current_directory_is_importable(tmp_path, monkeypatch):
    (tmp_path / "my_reward_here.py").write_text(
        "def score(prompts, completions):\n    return [len(c) for c in completions]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    assert load_callable("my_reward_here:score")(["x"], ["abc"]) == [3]
    with pytest.raises(RewardError, match=r"put not_here\.py in the directory you run goodhart from"):
        load_callable("not_here:score")


def test_the_console_script_finds_my_reward_py(tmp_path):
    """`goodhart config show` with a callable reward from ./my_reward.py, as a user types it."""
    (tmp_path / "my_reward.py").write_text("def score(prompts, completions):\n    return [1.0 for _ in completions]\n")
    goodhart = Path(sys.executable).with_name("goodhart")
    code = (
        "from goodhart.pipeline.base.scoring import build_reward\n"
        "from goodhart.pipeline.config.schema import CallableReward\n"
        "print(build_reward(CallableReward(target='my_reward:score')).score(['p'], ['c']))\n"
    )
    # python -c puts '' on sys.path; -I (isolated) does not, as the console script does not
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, env={**os.environ}
    )
    assert out.returncode == 0, out.stderr
    assert "[1.]" in out.stdout
    assert goodhart.is_file()


def test_a_missing_local_checkpoint_is_named_not_taken_for_a_hub_id(tmp_path):
    for path in (str(tmp_path / "nope"), "runs/rm/not-trained-yet", "./rm"):
        with pytest.raises(RewardError, match=f"reward model '{path}': no such directory"):
            HFClassifierReward(path)
