"""A trained point's policy as a plain Hugging Face model directory: `goodhart export`.

The newest complete checkpoint of the point (ours: checkpoints/step-*/model.safetensors, the
accelerate state of the policy, value head dropped; TRL's: checkpoints/checkpoint-*/) is loaded
into the base model the point was trained from. LoRA adapters are merged into the weights
(default) or kept as a peft adapter directory. The tokenizer and a short model card (how it
was trained; its held-out KL, proxy and utility from result.json) go beside the weights, so

    AutoModelForCausalLM.from_pretrained(OUT)            # merged or full fine-tune
    AutoPeftModelForCausalLM.from_pretrained(OUT)        # --keep-adapter

load it anywhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goodhart.pipeline.errors import UsageError
from goodhart.pipeline.io import atomic_write_text, read_json

_OURS = re.compile(r"step-(\d+)$")
_TRL = re.compile(r"checkpoint-(\d+)$")
TRAINED = ("ppo", "rloo", "grpo", "bon-ft")


@dataclass
class Exported:
    out: Path
    checkpoint: Path
    step: int
    adapter: bool  # True: a peft adapter directory (LoRA kept); False: full weights


def latest_checkpoint(point_dir: Path) -> tuple[Path, int] | None:
    """(newest complete checkpoint, its step) among ours and TRL's, or None."""
    root = point_dir / "checkpoints"
    if not root.is_dir():
        return None
    found = []
    for p in root.iterdir():
        m = _OURS.match(p.name) or _TRL.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    if not found:
        return None
    step, path = max(found)
    return path, step


def _state_dict(ckpt: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    files = sorted(ckpt.glob("model*.safetensors"))
    if not files:
        raise UsageError(
            f"checkpoint {ckpt} holds no model*.safetensors (a DeepSpeed ZeRO checkpoint: convert it with "
            "DeepSpeed's zero_to_fp32.py first)"
        )
    sd: dict[str, Any] = {}
    for f in files:
        sd.update(load_file(str(f)))
    if any(k.startswith("lm.") for k in sd):  # PPO's PolicyWithValue: the LM under `lm.`, plus the value head
        sd = {k[3:]: v for k, v in sd.items() if k.startswith("lm.")}
    return sd


def _load_weights(lm, ckpt: Path) -> None:
    """The checkpoint's weights into `lm` (peft-wrapped when the point used LoRA)."""
    if (ckpt / "adapter_config.json").is_file():  # TRL with LoRA: the adapter alone
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(lm, load_file(str(ckpt / "adapter_model.safetensors")))
        return
    sd = _state_dict(ckpt)
    missing, unexpected = lm.load_state_dict(sd, strict=False)
    tied = {"lm_head.weight", "base_model.model.lm_head.weight", "base_model.model.lm_head.base_layer.weight"}
    missing = [k for k in missing if k not in tied]  # safetensors stores a tied head once
    if missing or unexpected:
        raise UsageError(
            f"checkpoint {ckpt} does not fit the point's model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )


SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what model: smollm2-135m is (converted offline)


def base_model_id(model) -> str | None:
    """The Hugging Face hub id of the point's base model, for the card's `base_model`; None when
    it has none (the built-in tiny model, a local directory: the hub would reject a path)."""
    if model.name == "smollm2-135m":
        return SMOLLM2_HUB_ID
    if model.name == "path" and model.path and not Path(model.path).expanduser().exists():
        return model.path
    return None


def model_card(cfg, row: dict[str, Any], step: int, adapter: bool) -> str:
    """README.md with Hugging Face front matter (library, base model, tags): what the policy is,
    how it was trained, what it scored, and how the intervals were made."""
    import yaml

    from goodhart.eval import metrics as M
    from goodhart.pipeline.base.measure import ci_text, interval_method_text

    algo = cfg.algo
    knob = f"n = {algo.n}" if hasattr(algo, "n") else f"kl.coef = {algo.kl.coef:g}"
    base = cfg.model.path or cfg.model.name
    hub = base_model_id(cfg.model)
    front = {"library_name": "peft" if adapter else "transformers"}
    if hub:
        front["base_model"] = hub
    front["pipeline_tag"] = "text-generation"
    front["tags"] = ["goodhart", "rlhf", algo.kind, "kl-regularization", "reward-hacking-study"]
    intervals = interval_method_text(row.get(M.INTERVAL_METHOD), cfg.eval.ci, cfg.eval.bootstrap)
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {algo.kind} policy from goodhart point `{row.get('point_id', '?')}`",
        "",
        f"Trained with **{algo.kind}** ({knob}, {step} step(s), lr {getattr(algo, 'lr', '?')}) from the base model "
        f"`{base}` against the proxy reward `{row.get('error_law', cfg.reward.type)}` "
        f"(proxy = utility + error). {'A LoRA adapter over the base model.' if adapter else 'Full weights.'}",
        "",
        f"Held-out evaluation ({row.get(M.N_PROMPTS, '?')} prompts, {row.get(M.N_SAMPLES, '?')} samples each; {intervals}):",
        "",
        "| | |",
        "|---|---|",
        f"| KL(pi ‖ pi_0) [nats] | {ci_text(row, M.KL)} |",
        f"| proxy | {ci_text(row, M.PROXY)} |",
        f"| utility | {ci_text(row, M.UTILITY)} |",
        f"| proxy gain over the base | {ci_text(row, M.GAIN_PROXY)} |",
        f"| utility gain over the base | {ci_text(row, M.GAIN_UTILITY)} |",
        "",
        "Load: "
        + (
            "`AutoPeftModelForCausalLM.from_pretrained(dir)`"
            if adapter
            else "`AutoModelForCausalLM.from_pretrained(dir)`"
        ),
        "",
        "The point's full config is `goodhart_config.yaml`, its result row `goodhart_result.json`.",
    ]
    return "\n".join(lines) + "\n"


def export_policy(point_dir: Path, out: Path, keep_adapter: bool = False, progress: bool = False) -> Exported:
    """Write the point's trained policy to `out` as a Hugging Face model directory."""
    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.config.load import load_config, to_yaml

    point_dir, out = Path(point_dir), Path(out)
    if not (point_dir / "config.yaml").is_file():
        raise UsageError(f"{point_dir} is not a point directory (no config.yaml); see `goodhart status SWEEP`")
    cfg = load_config(point_dir / "config.yaml")
    if cfg.algo.kind not in TRAINED:
        raise UsageError(
            f"{point_dir} is a {cfg.algo.kind} point: it reweights base samples and has no policy to export"
        )
    found = latest_checkpoint(point_dir)
    if found is None:
        raise UsageError(
            f"{point_dir} has no complete checkpoint under checkpoints/ (train with algo.checkpoint_every > 0)"
        )
    ckpt, step = found
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty; choose a new directory")
    lora = getattr(cfg.algo, "lora", None)
    lm, tok = load_causal_lm(cfg.model.model_copy(update={"device": "cpu"}), progress=progress)
    if lora is not None:
        from peft import get_peft_model

        from goodhart.pipeline.train.policy import lora_config

        lm = get_peft_model(lm, lora_config(lora))
    _load_weights(lm, ckpt)
    adapter = lora is not None and keep_adapter
    if lora is not None and not keep_adapter:
        lm = lm.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(str(out))
    tok.padding_side = "left"  # generation pads on the left
    tok.save_pretrained(str(out))
    from goodhart.pipeline.io import follow_umask

    follow_umask(out)
    row = read_json(point_dir / "result.json") if (point_dir / "result.json").is_file() else {}
    atomic_write_text(out / "README.md", model_card(cfg, row, step, adapter))
    atomic_write_text(out / "goodhart_config.yaml", to_yaml(cfg))
    atomic_write_text(out / "goodhart_result.json", json.dumps(row, indent=1, default=str))
    return Exported(out, ckpt, step, adapter)
