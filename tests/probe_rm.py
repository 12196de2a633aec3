"""Small reward models for the probe's tests and demo (stand-ins for `goodhart train-rm`
checkpoints, which plug in the same way: any AutoModelForSequenceClassification directory).

- build_sentiment_rm: the base model's own backbone (LlamaForSequenceClassification loaded from
  the causal-LM checkpoint, a fresh scalar head) regressed for a few steps onto the standardized
  VADER sentiment of base completions: a real, imperfect learned proxy of a gold utility.
- build_mean_rm: a one-layer Llama classifier, random but with uniform causal attention, so its
  reward is a smooth function of the mean token embedding (a bag-of-words reward): every
  position counts, and a search that coordinates them must beat random sampling by far. Built
  in a second, for fast tests.

    python tests/probe_rm.py OUT_DIR [--base BASE_MODEL_DIR] [--samples 2048] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def build_sentiment_rm(
    base_dir: Path, out: Path, samples: int = 512, steps: int = 60, batch: int = 32, seed: int = 0
) -> Path:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForSequenceClassification

    from goodhart.pipeline.base.corpus import builtin_prompts
    from goodhart.pipeline.base.sampling import sample_completions
    from goodhart.pipeline.config.schema import SamplingConfig
    from goodhart.rewards.gold import Sentiment

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.padding_side = "left"
    lm = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    prompts = builtin_prompts(64, seed=seed + 7)
    per = -(-samples // len(prompts))
    comps = sample_completions(lm, tok, prompts, per, SamplingConfig(max_new_tokens=16), seed, progress=False)
    texts = [p + c for p, row in zip(prompts, comps) for c in row][:samples]
    gold = Sentiment().score([""] * len(texts), texts)
    y = torch.tensor((gold - gold.mean()) / (gold.std() + 1e-8), dtype=torch.float32)

    rm = LlamaForSequenceClassification.from_pretrained(base_dir, num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    opt = torch.optim.AdamW(rm.parameters(), lr=2e-3)
    rng = np.random.default_rng(seed)
    rm.train()
    for _ in range(steps):
        idx = rng.choice(len(texts), size=batch, replace=False)
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True)
        pred = rm(**enc).logits[:, 0]
        loss = torch.nn.functional.mse_loss(pred, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    rm.eval()
    out.mkdir(parents=True, exist_ok=True)
    rm.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_mean_rm(tokenizer_dir: Path, out: Path, seed: int = 0, hidden: int = 64) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    rm = LlamaForSequenceClassification(config)
    layer = rm.model.layers[0]
    with torch.no_grad():
        layer.self_attn.q_proj.weight.zero_()  # equal attention scores: the last token reads the
        layer.self_attn.k_proj.weight.zero_()  # mean of every position's value vector
        layer.self_attn.o_proj.weight.mul_(50.0)  # and that mean dominates the residual stream
        layer.mlp.down_proj.weight.zero_()
    rm.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main() -> None:
    from goodhart.pipeline.base.tiny_model import ensure_tiny_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--base", type=Path, default=None, help="base model directory (default: the built-in tiny model)")
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base = args.base or ensure_tiny_model()
    print(build_sentiment_rm(base, args.out, args.samples, args.steps))


if __name__ == "__main__":
    main()
