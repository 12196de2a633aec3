"""`goodhart export`: a tiny PPO point's checkpoint becomes a Hugging Face directory that
from_pretrained loads and that generates; its weights are the trained ones, not the base's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir

TINY = [
    "algo=ppo",
    "prompts.n_train=16",
    "prompts.n_eval=2",
    "sampling.n=4",
    "sampling.max_new_tokens=6",
    "eval.bootstrap=10",
    "eval.n_examples=1",
    "tracking.enabled=false",
    "algo.steps=2",
    "algo.batch_prompts=2",
    "algo.samples_per_prompt=2",
    "algo.minibatch=4",
    "algo.lr=1e-2",
    "algo.eval_samples=2",
    "algo.checkpoint_every=2",
    "reward={type: length}",  # every completion scores: the policy moves
]


def run_point(small_model_dir, *extra) -> Path:
    args = ["run", str(configs_dir() / "base.yaml"), "model.name=path", f"model.path={small_model_dir}", *TINY, *extra]
    assert main([*args, "--quiet"]) == 0
    [res] = list(Path("runs/run/points").glob("*/result.json"))
    return res.parent


def generate(model_dir: Path, peft: bool = False) -> tuple[torch.nn.Module, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if peft:
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(model_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    enc = tok(["the movie was"], return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**enc, max_new_tokens=5, do_sample=True, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]
    return model, tok.decode(out[0], skip_special_tokens=True)


def test_export_full_ppo_policy_reloads_and_generates(small_model_dir, in_tmp, capsys):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    point = run_point(small_model_dir)
    capsys.readouterr()
    assert main(["export", str(point), "exported"]) == 0
    assert "step 2" in capsys.readouterr().out
    out = in_tmp / "exported"
    model, text = generate(out)
    assert text.startswith("the movie was")
    # the weights are the checkpoint's policy, not the base model's
    ckpt = load_file(str(point / "checkpoints" / "step-000002" / "model.safetensors"))
    name = next(k for k in model.state_dict() if k.endswith("layers.0.self_attn.q_proj.weight"))
    assert torch.equal(model.state_dict()[name], ckpt[f"lm.{name}"])
    base = AutoModelForCausalLM.from_pretrained(small_model_dir).state_dict()
    assert any(not torch.equal(base[k], v) for k, v in model.state_dict().items())
    card = (out / "README.md").read_text()
    row = json.loads((point / "result.json").read_text())
    assert "ppo" in card and f"{row['kl']:.4g}" in card and f"{row['reward/proxy']:.4g}" in card
    assert f"{row['reward/utility']:.4g}" in card
    # a second export into the same directory is refused, in one line
    assert main(["export", str(point), "exported"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_export_lora_merged_or_kept_as_adapter(small_model_dir, in_tmp, capsys):
    point = run_point(small_model_dir, "algo.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}")
    assert main(["export", str(point), "merged", "--quiet"]) == 0
    assert main(["export", str(point), "adapter", "--keep-adapter", "--quiet"]) == 0
    merged, _ = generate(in_tmp / "merged")
    assert not (in_tmp / "merged" / "adapter_config.json").exists()
    assert (in_tmp / "adapter" / "adapter_config.json").is_file()
    kept, _ = generate(in_tmp / "adapter", peft=True)
    enc = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():  # merged weights and base + adapter are the same policy
        torch.testing.assert_close(merged(enc).logits, kept(enc).logits, atol=1e-4, rtol=1e-4)


def test_export_refuses_what_has_no_policy(in_tmp, capsys):
    p = in_tmp / "pt"
    p.mkdir()
    (p / "config.yaml").write_text("algo: tilt\n")
    assert main(["export", str(p), "o"]) == 2
    assert "no policy to export" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export"])
