"""A few DeepSpeed ZeRO training steps in ONE process on the CPU, run by the slow test in
tests/test_launch_configs.py under `accelerate launch --config_file <a 1-process copy of
configs/accelerate/deepspeed_zero{2,3}.yaml>`: proves the shipped configs/deepspeed/*.json,
with their "auto" values, drive a real engine (accelerate fills the autos from the model and
the dataloader). The first DeepSpeed run on a machine compiles a shared-memory op (~1-4 min,
cached under ~/.cache/torch_extensions).

    accelerate launch --config_file Z.yaml tests/deepspeed_step.py OUT STAGE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)


def main(out: Path, stage: int) -> None:
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, InitProcessGroupKwargs
    from transformers import LlamaConfig, LlamaForCausalLM

    acc = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")])
    assert acc.distributed_type == DistributedType.DEEPSPEED, acc.distributed_type
    assert acc.state.deepspeed_plugin.zero_stage == stage
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=48,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    model = LlamaForCausalLM(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.utils.data.DataLoader(torch.randint(0, 48, (8, 9)), batch_size=4)  # (8, T) tokens
    model, opt, data = acc.prepare(model, opt, data)
    losses = []
    for batch in data:
        loss = model(input_ids=batch, labels=batch).loss
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    ds = model.config  # the engine's resolved DeepSpeed config: no "auto" left
    out.mkdir(parents=True, exist_ok=True)
    (out / f"zero{stage}.json").write_text(json.dumps({"losses": losses, "config": ds}, default=str))
    assert "auto" not in json.dumps(ds), ds
    assert all(l == l and l < 10 for l in losses), losses


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
