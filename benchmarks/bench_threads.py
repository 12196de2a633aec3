"""Threads and OpenMP wait policy on a quiet and a loaded machine: seconds per training step of
the built-in tiny model's recipe (forward + backward + AdamW on 32 blocks of 64 tokens, the
pretraining step of `goodhart prepare`) and per `generate` batch (the demo's sampling), each in a
fresh process with OMP_NUM_THREADS = 1 or all cores and OMP_WAIT_POLICY = ACTIVE (spinning) or
PASSIVE. "loaded" starts one busy-loop competitor per core (`while True: pass`) for the run;
the figure also gives the competitors' progress (loop iterations per second), since a spinning
thread steals from the neighbours as much as it gains. Also prints what
`goodhart.pipeline.base.threads.choose_threads()` picks in each condition.

    python benchmarks/bench_threads.py [--quick | --smoke] [--out FILE]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

WORK = r"""
import json, sys, time
t_import = time.perf_counter()
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from goodhart.pipeline.base.tiny_model import TinyRecipe
steps = int(sys.argv[1])
r = TinyRecipe()
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=r.vocab_size, hidden_size=r.hidden, intermediate_size=352, num_hidden_layers=r.layers,
                  num_attention_heads=r.heads, max_position_embeddings=r.max_len)
model = LlamaForCausalLM(cfg)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(3, r.vocab_size, (r.batch, r.max_len))
train = []
for i in range(steps + 1):
    t0 = time.perf_counter()
    loss = model(input_ids=x, labels=x).loss
    loss.backward(); opt.step(); opt.zero_grad()
    train.append(time.perf_counter() - t0)
model.eval()
gen = []
with torch.inference_mode():
    for i in range(max(2, steps // 2) + 1):
        t0 = time.perf_counter()
        model.generate(x[:64, :8], do_sample=True, top_k=0, max_new_tokens=24, pad_token_id=0)
        gen.append(time.perf_counter() - t0)
print(json.dumps({"threads": torch.get_num_threads(), "train": train[1:], "gen": gen[1:]}))
"""
SPIN = "import sys, time\nn = 0\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    n += 1\nprint(n)"
CHOOSE = "from goodhart.pipeline.base.threads import choose_threads; print(choose_threads())"


def _competitors(k: int, seconds: float) -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, "-c", SPIN, str(seconds)], stdout=subprocess.PIPE, text=True)
        for _ in range(k)
    ]


def _case(threads: int, policy: str, steps: int, load: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GOODHART_THREADS",)}
    env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": policy}
    comp = _competitors(load, 3600)
    t0 = time.perf_counter()
    try:
        time.sleep(0.5 if load else 0)
        r = subprocess.run([sys.executable, "-c", WORK, str(steps)], env=env, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        doc = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        wall = time.perf_counter() - t0
        for p in comp:
            p.kill()
        for p in comp:
            p.wait()
    return {
        "load": f"{load} spinner(s)" if load else "quiet",
        "threads": doc["threads"],
        "wait_policy": policy,
        "train_step_s": B.median(doc["train"]),
        "generate_batch_s": B.median(doc["gen"]),
        "wall_s": round(wall, 1),
    }


def _chosen(load: int) -> int:
    comp = _competitors(load, 3600)
    try:
        time.sleep(1.0 if load else 0)
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GOODHART_THREADS")}
        r = subprocess.run([sys.executable, "-c", CHOOSE], env=env, capture_output=True, text=True, check=True)
        return int(r.stdout.strip())
    finally:
        for p in comp:
            p.kill()
            p.wait()


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    cores = os.cpu_count() or 1
    steps = opts.pick(2, 8, 20)
    loads = [0, cores]
    rows, chosen = [], {}
    load_before = B.load_avg()
    for load in loads:
        chosen["loaded" if load else "quiet"] = _chosen(load)
        for threads in sorted({1, cores}):
            for policy in ("ACTIVE", "PASSIVE"):
                rows.append(_case(threads, policy, steps, load))
                B.say(f"  {rows[-1]}")
    B.say(f"threads vs load ({steps} steps each; load averages {load_before} -> {B.load_avg()})")
    B.say(B.table(rows, ["load", "threads", "wait_policy", "train_step_s", "generate_batch_s"]))
    B.say(f"choose_threads() picks: {chosen}")
    figures = {"steps": steps, "rows": rows, "chosen": chosen, "load_avg_before": load_before}
    return B.write_json(opts.out, "threads", opts, figures, started)


if __name__ == "__main__":
    run(B.parse_opts(None, "threads", __doc__))
