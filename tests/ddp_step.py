"""A minimal DDP policy-gradient step, run by tests/test_launch_configs.py under
`accelerate launch --config_file configs/accelerate/cpu_multiprocess.yaml` (2 CPU processes, gloo).

Each rank: builds the same tiny LlamaForCausalLM from a config (no weights on disk), samples
token sequences from it with a rank-specific seed, takes a few SGD steps on a REINFORCE loss
-(r - mean r) * log pi(tokens), and checks that it sees world size 2 and that, after the steps,
its parameters equal every other rank's (DDP averaged the gradients) and moved from the start.
It writes OUT/rank<r>.json; any failed check exits non-zero.

    ACCELERATE_USE_CPU=true OMP_NUM_THREADS=1 \
        accelerate launch --config_file configs/accelerate/cpu_multiprocess.yaml tests/ddp_step.py OUT
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)


def main(out: Path) -> None:
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, InitProcessGroupKwargs
    from transformers import LlamaConfig, LlamaForCausalLM

    acc = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")])
    assert acc.num_processes == 2, f"world size {acc.num_processes}, expected 2"
    assert torch.distributed.get_world_size() == 2 and torch.distributed.get_backend() == "gloo"
    # Without ACCELERATE_USE_CPU=true (accelerate 1.15's multi-GPU launcher does not pass the
    # config's use_cpu on) this is NO: two processes, no DDP, silently unsynchronised weights.
    assert acc.distributed_type == DistributedType.MULTI_CPU, f"distributed type {acc.distributed_type}"

    torch.manual_seed(0)  # the same initial weights on every rank
    V, T, B = 48, 8, 16  # vocab, tokens per sample, samples per rank and step
    cfg = LlamaConfig(
        vocab_size=V,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    model = LlamaForCausalLM(cfg)
    start = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model, opt = acc.prepare(model, opt)
    assert isinstance(model, torch.nn.parallel.DistributedDataParallel), type(model).__name__

    gen = torch.Generator().manual_seed(1000 + acc.process_index)  # different samples per rank
    rewards = []
    for step in range(3):
        # Sample B sequences of T tokens from the current policy, one token at a time.
        seq = torch.zeros(B, 1, dtype=torch.long)  # (B, 1): token 0 as BOS
        with torch.no_grad():
            for _ in range(T):
                logits = model(input_ids=seq).logits[:, -1, :]  # (B, V)
                nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)  # (B, 1)
                seq = torch.cat([seq, nxt], dim=1)
        r = (seq[:, 1:] < V // 2).float().mean(1)  # (B,) reward: share of "low" tokens
        adv = r - r.mean()
        logp = torch.log_softmax(model(input_ids=seq[:, :-1]).logits, -1)  # (B, T, V)
        tok_logp = logp.gather(-1, seq[:, 1:, None]).squeeze(-1).sum(1)  # (B,)
        loss = -(adv * tok_logp).mean()
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
        rewards.append(float(r.mean()))

    flat = torch.cat([p.detach().flatten() for p in acc.unwrap_model(model).parameters()])
    everyone = [torch.empty_like(flat) for _ in range(acc.num_processes)]
    torch.distributed.all_gather(everyone, flat)  # every rank's parameters, (n_params,) each
    same = all(torch.equal(everyone[0], other) for other in everyone[1:])
    moved = float((flat - start).abs().max())
    report = {
        "rank": acc.process_index,
        "world_size": acc.num_processes,
        "backend": torch.distributed.get_backend(),
        "identical_across_ranks": same,
        "max_change": moved,
        "rewards": rewards,
        "pid": os.getpid(),
        "n_params": flat.numel(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{acc.process_index}.json").write_text(json.dumps(report))
    assert same, "parameters differ across ranks after the DDP steps"
    assert moved > 0, "parameters did not change"
    acc.wait_for_everyone()
    acc.end_training()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
