"""A plain TRL GRPO script that gains goodhart's gold-free alarm by adding one callback.

The proxy is a utility (distinct words) plus a heavy-tailed error on a feature the policy can
learn (how often the letter "e" appears): a reward that can be won through its tail. The gold
utility is passed to the callback only (it is never optimized), so the alarm's reading can be
checked against it afterwards. With --stop the run stops at the first alarm; the summary says
where, and which checkpoint was the last one saved while the alarm was quiet.

    python examples/grpo_with_alarm.py --model PATH_OR_HUB_ID --steps 50 --stop
    python examples/grpo_with_alarm.py --model PATH --light      # a light-tailed proxy: no alarm expected
    python examples/grpo_with_alarm.py --model PATH --holdout    # + a held-out reward: the gain without gold

With --holdout the callback also gets a held-out reward function (the utility plus an error of its
own, a hash of the text: independent of the proxy's; never optimized): each check then logs the
utility gain estimated without gold (goodhart/gain/holdout), and the summary names the checkpoint
where that estimate peaked (docs/holdout.md).

Needs: goodhart (this repository) and trl; runs on CPU with a small model.
"""

from __future__ import annotations

import argparse
import json
import math

from goodhart.integrations.trl import GoodhartCallback


def utility(prompts, completions, **_):
    """The gold: distinct words per completion, a little above the base for a better text."""
    return [len(set(c.split())) / 4.0 for c in completions]


def hackable_proxy(prompts, completions, **_):
    """utility + a heavy-tailed, learnable error: exp(0.7 x count of 'e') - 1 (a few samples with
    many e's carry huge rewards)."""
    return [u + math.expm1(0.7 * c.count("e")) for u, c in zip(utility(prompts, completions), completions)]


def light_proxy(prompts, completions, **_):
    """utility + a bounded error on the same feature (no tail to win through)."""
    return [u + 0.2 * math.tanh(c.count("e") - 2) for u, c in zip(utility(prompts, completions), completions)]


def heldout_reward(prompts, completions, **_):
    """A held-out reward: the utility plus an error of its own, uniform on [-0.2, 0.2] by a hash of
    the text -- independent of the proxy's error (a second reward model trained on other data
    plays this part in a real run)."""
    import hashlib

    def noise(text: str) -> float:
        h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8, key=b"heldout").digest(), "little")
        return 0.4 * (h / 2**64 - 0.5)

    return [u + noise(p + "\x00" + c) for u, p, c in zip(utility(prompts, completions), prompts, completions)]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a causal LM: a local directory or a hub id")
    ap.add_argument("--out", default="runs/grpo_with_alarm")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--every", type=int, default=1, help="steps between alarm checks")
    ap.add_argument("--stop", action="store_true", help="stop training at the first alarm")
    ap.add_argument("--light", action="store_true", help="use the light-tailed proxy instead")
    ap.add_argument("--holdout", action="store_true", help="also estimate the utility gain with a held-out reward")
    ap.add_argument("--tokens", type=int, default=16, help="max completion length")
    ap.add_argument("--report-to", default="none", help="TRL/transformers loggers: none, mlflow, tensorboard, wandb")
    args = ap.parse_args(argv)

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    model = AutoModelForCausalLM.from_pretrained(args.model)
    tok = AutoTokenizer.from_pretrained(args.model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    prompts = ["The weather today", "My favourite food", "A story about", "The best thing", "In the morning"] * 8
    config = GRPOConfig(
        output_dir=args.out,
        max_steps=args.steps,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=args.tokens,
        learning_rate=5e-3,
        beta=0.05,  # a KL penalty: TRL then logs its KL, which the alarm reads
        logging_steps=1,
        save_steps=2,
        save_total_limit=None,
        report_to=args.report_to,
        bf16=False,
        disable_tqdm=True,
        seed=0,
    )

    # ---- the one addition: a callback, and the reward functions passed through it -------------
    alarm = GoodhartCallback(
        every=args.every,
        stop_on_alarm=args.stop,
        base_samples=16,
        base_prompts=4,
        samples_file="goodhart_samples.csv",  # optional: every sample, for `goodhart analyze --pairing global`
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=alarm.wrap(
            [light_proxy if args.light else hackable_proxy],
            gold=utility,
            holdout=[heldout_reward] if args.holdout else None,
        ),
        args=config,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tok,
        callbacks=[alarm],
    )
    # ---------------------------------------------------------------------------------------------
    trainer.train()
    summary = alarm.summary()
    levels = " ".join(f"{c['step']}:{c['level']}" for c in summary["checks"])
    print(f"alarm checks (step:level): {levels}")
    print(f"stopped at step {summary['stopped_at']}; last checkpoint not flagged: {summary['last_quiet_checkpoint']}")
    if args.holdout:
        print(f"held-out estimate's best checkpoint: {summary['best_holdout_checkpoint']}")
    print(json.dumps({k: summary[k] for k in ("stopped_at", "last_quiet_step", "last_quiet_checkpoint")}))
    return summary


if __name__ == "__main__":
    main()
