"""Shared machinery of trained optimizers (ppo; rloo, grpo and bon-ft build on it).

    session.TrainSession     Accelerator, seeds, calibrated Scorer, prompt stream, logging,
                             preemption check, checkpoints: `TrainSession.start(ctx, seed)`
    policy.load_policy       (trainable LM [peft when `lora`], Reference pi_0, tokenizer)
    policy.lora_config       a `lora:` block as a peft LoraConfig (also for TRL's trainers)
    policy.PolicyWithValue   LM + linear value head, one forward -> (logits, values)
    rollout.sample_rollout   n completions per prompt with ids, masks and log-probs
    rollout.score_rollout    proxy (optimized), utility (logged), error, clipped fraction
    checkpoint.Checkpointer  atomic save / latest / load under <point_dir>/checkpoints/
    evaluate.evaluate_policy any trained policy -> a PointOutput row comparable with tilt/bon
    preemption               handled() (signals -> flag during a run), requested(), any_process(),
                             Preempted (exit 75)
    loop.Training, loop.Steps the skeleton of ppo and bon-ft: set up, resume, iterate, checkpoint, stop, evaluate
    kl                       the completion slice, token log-probs, masked_mean, k1/k3, sequence KL,
                             the adaptive KL controller
    alarm_monitor            the gold-free alarm (eval/alarm.py) online during training, and the
                             stop-on-alarm rollback
    export.export_policy     a trained point's checkpoint as a Hugging Face model dir (`goodhart export`)
    reward_model             `goodhart train-rm`: a learned proxy reward from gold-labelled pairs

KL to pi_0 is measured in one place for all of them (and for the probe): `goodhart.pipeline.train.kl`.

Imports: base, config, errors, io, goodhart.rewards, goodhart.eval.
"""

from goodhart.pipeline.train.checkpoint import Checkpointer
from goodhart.pipeline.train.evaluate import evaluate_policy
from goodhart.pipeline.train.policy import PolicyWithValue, Reference, generation_lm, load_policy, lora_config
from goodhart.pipeline.train.preemption import Preempted
from goodhart.pipeline.train.rollout import Rollout, sample_rollout, score_rollout, unwrapped_for_generation
from goodhart.pipeline.train.session import TrainSession, calibrated_scorer, make_accelerator, prompt_batch

__all__ = [
    "Checkpointer",
    "evaluate_policy",
    "PolicyWithValue",
    "Reference",
    "generation_lm",
    "load_policy",
    "lora_config",
    "Preempted",
    "Rollout",
    "sample_rollout",
    "score_rollout",
    "unwrapped_for_generation",
    "TrainSession",
    "calibrated_scorer",
    "make_accelerator",
    "prompt_batch",
]
