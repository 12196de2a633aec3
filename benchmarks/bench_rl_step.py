"""One RL step: RLOO and GRPO through the pipeline against a plain TRL script with the same
model, batch, completion length and KL settings; our PPO step against TRL's RLOO at equal
samples per step.

    pipeline  goodhart's optimizer entry point (pipeline/optimizers/{rloo,grpo,ppo}.py) run on a
              PointContext: our TrainingArguments, the Scorer as two TRL reward functions (proxy
              and a zero-weight utility), the metric callback, the held-out evaluation after.
    plain     `RLOOTrainer` / `GRPOTrainer` built from the model directory by hand, one reward
              function computing the same proxy with the same reward objects, no callbacks.

A step's time is the wall time between consecutive per-step logs (everything in the training
loop: sampling, scoring, forward/backward, callbacks), the first step dropped (warm-up). Runs
alternate pipeline / plain in rounds; the figure is the median over steps and the median of
per-round ratios. Goal: pipeline / plain <= 1.05 for RLOO and GRPO. MLflow is off on both
sides (tracking cost is the end-to-end benchmark's business).

    python benchmarks/bench_rl_step.py [--quick|--smoke] [--device cuda]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

NAME = "rl_step"


def _intervals(stamps: list[float]) -> list[float]:
    """Seconds between consecutive step logs, the first step (warm-up, includes set-up) dropped."""
    return [b - a for a, b in zip(stamps, stamps[1:])]


def pipeline_run(kind: str, model_dir: Path, opts: B.Opts, steps: int, overrides: list[str]) -> list[float]:
    """Run the pipeline's optimizer for `steps` steps; seconds per step after the first."""
    from goodhart.eval import metrics as M
    from goodhart.pipeline import optimizers
    from goodhart.pipeline.base.context import PointContext

    cfg = B.run_config(
        model_dir,
        opts.device,
        [
            f"algo={kind}",
            f"algo.steps={steps}",
            "algo.checkpoint_every=0",
            "algo.eval_samples=1",
            "prompts.n_eval=2",
            "reward=gaussian",
            *overrides,
        ],
    )
    stamps: list[float] = []

    def log(metrics: dict[str, float], step: int) -> None:
        if M.PROXY in metrics:
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as d:
        optimizers.get(kind)(PointContext(cfg, Path(d), progress=False, log_metrics=log))
    return _intervals(stamps)


def plain_run(kind: str, model_dir: Path, opts: B.Opts, steps: int, beta: float) -> list[float]:
    """The same training as a plain TRL script would write it; seconds per step after the first."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from goodhart.pipeline.base.prompts import load_prompts
    from goodhart.pipeline.base.scoring import build_reward

    cfg = B.run_config(model_dir, opts.device, ["reward=gaussian"])
    train, _ = load_prompts(cfg.prompts)
    reward = build_reward(cfg.reward)

    def proxy(prompts, completions, **kw):
        return reward.score(prompts, completions).tolist()

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                stamps.append(time.perf_counter())

    common = dict(
        max_steps=steps,
        per_device_train_batch_size=16,
        num_generations=4,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        beta=beta,
        epsilon=0.2,
        num_iterations=1,
        max_completion_length=cfg.sampling.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        use_cpu=not opts.device.startswith("cuda"),
    )
    with tempfile.TemporaryDirectory() as d:
        if kind == "rloo":
            args = RLOOConfig(output_dir=d, normalize_advantages=False, reward_clip_range=None, **common)
            cls = RLOOTrainer
        else:
            args = GRPOConfig(output_dir=d, loss_type="dapo", scale_rewards="group", **common)
            cls = GRPOTrainer
        trainer = cls(
            model=str(model_dir),
            reward_funcs=[proxy],
            args=args,
            train_dataset=Dataset.from_dict({"prompt": train}),
            callbacks=[Stamp()],
        )
        trainer.remove_callback(PrinterCallback)  # as the pipeline does: no log dicts printed per step
        trainer.train()
    return _intervals(stamps)


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    model_dir = B.bench_model_dir(opts)
    steps = opts.pick(2, 6, 12)  # (smoke: one timed step after the warm-up one)
    rounds = opts.pick(1, 3, 5)
    beta = 0.05
    kl = [f"algo.kl.coef={beta}"]
    trl_batch = ["algo.batch_prompts=4", "algo.num_generations=4"]  # 16 completions per step
    ppo_batch = ["algo.batch_prompts=4", "algo.samples_per_prompt=4", "algo.minibatch=16"]  # 16 too
    cases = {
        "pipeline_rloo": lambda: pipeline_run("rloo", model_dir, opts, steps, kl + trl_batch),
        "plain_rloo": lambda: plain_run("rloo", model_dir, opts, steps, beta),
        "pipeline_grpo": lambda: pipeline_run("grpo", model_dir, opts, steps, kl + trl_batch),
        "plain_grpo": lambda: plain_run("grpo", model_dir, opts, steps, beta),
        "ppo": lambda: pipeline_run("ppo", model_dir, opts, steps, kl + ppo_batch),
    }
    per_step: dict[str, list[float]] = {k: [] for k in cases}  # every step of every round
    per_round: dict[str, list[float]] = {k: [] for k in cases}  # median step of each round
    loads = [B.load_avg()]
    with B.quiet():
        for r in range(rounds):
            names = list(cases)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                xs = cases[name]()
                per_step[name] += xs
                per_round[name].append(B.median(xs))
            loads.append(B.load_avg())
            B.say(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {per_round[k][-1]:.3f}s" for k in cases))

    rows = []
    for algo in ("rloo", "grpo"):
        p, q = per_round[f"pipeline_{algo}"], per_round[f"plain_{algo}"]
        rows.append(
            {
                "algo": algo,
                "pipeline_s": B.median(per_step[f"pipeline_{algo}"]),
                "plain_s": B.median(per_step[f"plain_{algo}"]),
                "ratio": B.paired_ratio(p, q),
                "goal": "<= 1.05",
            }
        )
    ppo_vs_rloo = B.paired_ratio(per_round["ppo"], per_round["plain_rloo"])
    B.say(
        f"\n== RL step: 16 completions x {B.run_config(model_dir, opts.device, []).sampling.max_new_tokens} tokens per step, beta={beta}, device {opts.device}"
    )
    B.say(B.table(rows, ["algo", "pipeline_s", "plain_s", "ratio", "goal"]))
    B.say(
        f"our PPO step (16 samples, 2 PPO epochs, value head) {B.median(per_step['ppo']):.3f}s vs plain TRL RLOO "
        f"{B.median(per_step['plain_rloo']):.3f}s: ratio {ppo_vs_rloo:.2f}"
    )
    B.say(f"load averages during the runs: {loads}")
    figures = {
        "samples_per_step": 16,
        "steps_per_run": steps,
        "rounds": rounds,
        "beta": beta,
        "rows": rows,
        "ppo_over_plain_rloo": ppo_vs_rloo,
        "per_step_seconds": per_step,
        "per_round_median_seconds": per_round,
        "load_during": loads,
    }
    return B.write_json(opts.out, NAME, opts, figures, started)


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
