"""`goodhart export`: a tiny PPO point's checkpoint becomes a Hugging Face directory that
from_pretrained loads and that generates; its weights are the trained ones, not the base's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

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
    from goodhart.pipeline.base.measure import ci_text

    assert "ppo" in card and ci_text(row, "kl") in card and ci_text(row, "reward/proxy") in card
    assert ci_text(row, "reward/utility") in card and "[" in ci_text(row, "kl")
    # Hugging Face front matter, and the interval method the point really used (eval.interval: t)
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "transformers" and "ppo" in front["tags"] and "goodhart" in front["tags"]
    assert "base_model" not in front  # a local base model has no hub id to name
    assert row["interval_method"] == "t" and "95% Student-t intervals over prompts" in card
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
    library = {
        d: yaml.safe_load((in_tmp / d / "README.md").read_text().split("---\n")[1])["library_name"]
        for d in ("merged", "adapter")
    }
    assert library == {"merged": "transformers", "adapter": "peft"}


def test_the_card_names_a_hub_base_model_and_the_bootstrap_when_used():
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.train.export import SMOLLM2_HUB_ID, model_card

    cfg = load_config(None, ["algo=ppo", "model.name=smollm2-135m", "eval.interval=bootstrap", "eval.bootstrap=200"])
    row = {"kl": 1.5, "kl/lo": 1.0, "kl/hi": 2.0, "interval_method": "bootstrap", "n_prompts": 8}
    card = model_card(cfg, row, 10, adapter=False)
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model"] == SMOLLM2_HUB_ID and front["pipeline_tag"] == "text-generation"
    assert "95% percentile-bootstrap intervals over prompts (200 resamples)" in card
    assert "| KL(pi ‖ pi_0) [nats] | 1.500 [1.000, 2.000] |" in card
    hub = load_config(None, ["algo=ppo", "model.path=some-org/some-model"])
    assert yaml.safe_load(model_card(hub, {}, 1, False).split("---\n")[1])["base_model"] == "some-org/some-model"


def test_export_refuses_what_has_no_policy(in_tmp, capsys):
    p = in_tmp / "pt"
    p.mkdir()
    (p / "config.yaml").write_text("algo: tilt\n")
    assert main(["export", str(p), "o"]) == 2
    assert "no policy to export" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export"])
