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
    online_alarm.OnlineAlarm the one online alarm (eval/alarm.py read during training): schedule,
                             window, cross-process agreement; used by alarm_monitor and by
                             goodhart.integrations.trl's callback
    alarm_monitor            the online alarm in our trained optimizers (ppo, bon-ft, rloo, grpo),
                             and the stop-on-alarm rollback
    export.export_policy     a trained point's checkpoint as a Hugging Face model dir (`goodhart export`)
    reward_model             `goodhart train-rm`: a learned proxy reward from gold-labelled pairs

KL to pi_0 is measured in one place for all of them (and for the probe): `goodhart.pipeline.train.kl`.

Imports: base, config, errors, io, goodhart.rewards, goodhart.eval.
"""

# Lazy (PEP 562): `goodhart status` and friends import train.preemption through sweeps.point,
# and must not pay for torch; each name is imported from its module on first use.
_WHERE = {
    "Checkpointer": "checkpoint",
    "evaluate_policy": "evaluate",
    "PolicyWithValue": "policy",
    "Reference": "policy",
    "generation_lm": "policy",
    "load_policy": "policy",
    "lora_config": "policy",
    "Preempted": "preemption",
    "Rollout": "rollout",
    "sample_rollout": "rollout",
    "score_rollout": "rollout",
    "unwrapped_for_generation": "rollout",
    "TrainSession": "session",
    "calibrated_scorer": "session",
    "make_accelerator": "session",
    "prompt_batch": "session",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
