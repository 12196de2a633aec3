"""Glue between TRL's online trainers (GRPO, RLOO) and the pipeline: rewards in, metrics out,
checkpoints, resume, preemption, and our own held-out evaluation at the end.

    rewards     TRL calls reward functions f(prompts, completions, **kw) -> floats. Ours are two
                views of one Scorer pass: `proxy` (weight 1: optimized) and `utility` (weight 0:
                logged, not optimized), so TRL logs rewards/proxy/mean and rewards/utility/mean
                at every step. Our `clip:` (if set) acts inside the Scorer; TRL's own reward
                clipping (RLOO reward_clip_range) is set off explicitly.
    metrics     a TrainerCallback maps TRL's log keys to ours (TRL_NAMES) and sends them to the
                point's MLflow run through ctx.log_metrics; every other key becomes trl/<key>.
                TRL opens no MLflow run of its own (report_to="none").
    KL          TRL's figure (GRPO: per-token k3 in the loss; RLOO: per-token k1 whose sequence sum
                is subtracted from the reward) is logged as `trl/kl`, never as `kl`. The point's
                `kl` is ours (goodhart.pipeline.train.kl, seq_k1), measured by evaluate_policy on held-out
                samples, for beta = 0 as for any other beta.
    checkpoints TRL's own (model, optimizer, scheduler, RNG, trainer state) every
                `checkpoint_every` steps and after the last, into <point_dir>/checkpoints/
                checkpoint-<step>/ (the last one kept). transformers writes trainer_state.json
                last, so a directory without it is a cut-short save: ignored and removed. A
                re-run resumes from the newest complete one (run_point skips finished points).
    preemption  SIGUSR1/SIGTERM (goodhart.pipeline.train.preemption) -> save at the end of the step,
                stop, raise Preempted (exit 75): the requeued task resumes from there.

Pinned against trl 1.16 (pyproject): the names of TRL's config fields and log keys used here are
those of that release.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback, TrainingArguments

from goodhart.eval import metrics as M
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput
from goodhart.pipeline.train import Reference, calibrated_scorer, evaluate_policy, lora_config, preemption
from goodhart.pipeline.train.alarm_monitor import AlarmMonitor

TRL_NAMES = {
    "rewards/proxy/mean": M.PROXY,  # mean proxy of the step's samples (all processes)
    "rewards/utility/mean": M.UTILITY,  # mean true utility of the same samples (weight 0: not optimized)
    "kl": M.TRL_KL,  # TRL's per-token KL of the batch (k3 for GRPO, k1 for RLOO): NOT our `kl`
    "loss": M.LOSS_TOTAL,
    "grad_norm": M.GRAD_NORM,
    "learning_rate": M.LEARNING_RATE,
    "entropy": M.ENTROPY,  # per-token entropy of the policy on the batch
    "step_time": M.STEP_SECONDS,
}
"""TRL 1.16 log key -> our metric name. Any other key is logged as trl/<key> (sanitized)."""

_SKIPPED = {"epoch", "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss"}
"""Trainer bookkeeping and end-of-training summaries: not per-step metrics (the row has `seconds`)."""

_CHECKPOINTING_ARG = (  # transformers 5.x renamed gradient_checkpointing (kept as a deprecated alias)
    "activation_checkpointing"
    if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
    else "gradient_checkpointing"
)
_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")
_TRAINER_STATE = "trainer_state.json"


# ============================================================================================
# Rewards: one Scorer pass, two reward functions
# ============================================================================================
class RewardBridge:
    """Our Scorer as TRL reward functions. TRL calls `proxy` then `utility` on the same batch;
    the scorer runs once per batch and both read its result."""

    def __init__(self, scorer):
        self.scorer = scorer
        self._key: tuple | None = None
        self._parts: dict[str, np.ndarray] = {}
        self._clip_mark = (0, 0)  # scorer.clip (seen, clipped) at the last log

    def _score(self, prompts: list[str], completions: list[str], part: str) -> list[float]:
        key = (tuple(prompts), tuple(completions))
        if key != self._key:
            self._parts, self._key = self.scorer.components(list(prompts), list(completions)), key
        return [float(x) for x in self._parts[part]]

    def functions(self) -> list[Callable[..., list[float]]]:
        """[proxy, utility]: named so TRL logs rewards/proxy/* and rewards/utility/*."""

        def proxy(prompts, completions, **_: Any) -> list[float]:
            return self._score(prompts, completions, "proxy")

        def utility(prompts, completions, **_: Any) -> list[float]:
            return self._score(prompts, completions, "utility")

        return [proxy, utility]

    def clipped_fraction(self) -> float | None:
        """Fraction of proxies our `clip:` clipped since the last call (None: clipping off)."""
        clip = self.scorer.clip
        if clip is None:
            return None
        seen, clipped = clip.n_seen - self._clip_mark[0], clip.n_clipped - self._clip_mark[1]
        self._clip_mark = (clip.n_seen, clip.n_clipped)
        return clipped / seen if seen else 0.0


def translate(logs: dict[str, Any], beta: float) -> dict[str, float]:
    """TRL's log dict -> our metric names (TRL_NAMES, else trl/<key>), plus reward/error and the KL
    coefficient. Non-numbers, None and Trainer bookkeeping are dropped."""
    out: dict[str, float] = {}
    for key, value in logs.items():
        if key in _SKIPPED or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[TRL_NAMES.get(key, M.TRL_PREFIX + M.sanitize(key))] = float(value)
    if not out:
        return out
    if M.PROXY in out and M.UTILITY in out:
        out[M.ERROR] = out[M.PROXY] - out[M.UTILITY]
    out[M.KL_COEF] = beta
    return out


# ============================================================================================
# The callback: metrics to MLflow, progress, preemption
# ============================================================================================
class PipelineCallback(TrainerCallback):
    """Routes TRL's per-step logs into ctx.log_metrics (main process), draws a progress bar, and
    turns a preemption request into save-and-stop."""

    def __init__(self, ctx: PointContext, kind: str, beta: float, rewards: RewardBridge):
        self.ctx, self.kind, self.beta, self.rewards = ctx, kind, beta, rewards
        self.step_seconds: list[float] = []
        self.preempted_at: int | None = None
        self.monitor = None  # an AlarmMonitor (pipeline/train/alarm_monitor.py), set after the trainer is built
        self._bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        show = self.ctx.progress and state.is_world_process_zero
        self._bar = tqdm(
            total=state.max_steps, initial=state.global_step, desc=self.kind, unit="step", disable=not show, leave=False
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        alarm = self.monitor.check_trl(state.global_step, logs, kwargs.get("model")) if self.monitor else {}
        if alarm.pop("stop", 0.0):  # algo.stop_on_alarm (every process agrees)
            control.should_training_stop = True
        if not state.is_world_process_zero or not logs:
            return
        metrics = {**translate(logs, self.beta), **alarm}
        if not metrics:
            return
        clipped = self.rewards.clipped_fraction()
        if clipped is not None:
            metrics[M.REWARD_CLIPPED] = clipped
        if M.STEP_SECONDS in metrics:
            self.step_seconds.append(metrics[M.STEP_SECONDS])
        self.ctx.log_metrics(metrics, state.global_step)
        if self._bar is not None and M.PROXY in metrics:
            self._bar.set_postfix(proxy=f"{metrics[M.PROXY]:.3g}", utility=f"{metrics[M.UTILITY]:.3g}")

    def on_step_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.update(1)
        if preemption.any_process(preemption.requested(), args.device):  # every rank stops at the same step
            control.should_save = True  # the Trainer saves right after this callback
            control.should_training_stop = True
            self.preempted_at = state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.close()


@contextlib.contextmanager
def _no_hf_bars() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if were_on:
            hf_logging.enable_progress_bar()


# ============================================================================================
# Checkpoints
# ============================================================================================
def last_complete_checkpoint(root: Path, remove_incomplete: bool = True) -> Path | None:
    """Newest checkpoint-<step>/ under `root` that holds trainer_state.json (written last by
    transformers). Incomplete ones (a save cut short) are removed so they never shadow it."""
    if not root.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir())
    complete = [p for _, p in found if (p / _TRAINER_STATE).is_file()]
    if remove_incomplete:
        for _, p in found:
            if not (p / _TRAINER_STATE).is_file():
                shutil.rmtree(p, ignore_errors=True)
    return complete[-1] if complete else None


def checkpoint_step(path: Path | None) -> int:
    return int(_CHECKPOINT.match(path.name).group(1)) if path is not None else 0  # type: ignore[union-attr]


# ============================================================================================
# Arguments every TRL trainer gets
# ============================================================================================
def common_args(ctx: PointContext, seed: int) -> dict[str, Any]:
    """TrainingArguments shared by GRPO and RLOO. Anything that would clip, mask or mix precision
    behind our back is set explicitly (TRL's defaults differ: bf16 on, checkpointing on, lr decay)."""
    import torch

    cfg, algo = ctx.cfg, ctx.cfg.algo
    every = algo.checkpoint_every
    return dict(
        output_dir=str(ctx.point_dir / "checkpoints"),
        # ---- schedule and batch: batch_prompts prompts x num_generations completions per process
        max_steps=algo.steps,
        per_device_train_batch_size=algo.batch_prompts * algo.num_generations,
        gradient_accumulation_steps=1,
        num_generations=algo.num_generations,
        num_iterations=algo.num_iterations,
        learning_rate=algo.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=algo.weight_decay,
        max_grad_norm=algo.max_grad_norm or 0.0,  # 0: no gradient clipping
        seed=seed,
        # ---- sampling: the run's sampling settings, pure (top_k off) as everywhere in the pipeline
        max_completion_length=cfg.sampling.max_new_tokens,
        temperature=cfg.sampling.temperature,
        top_p=cfg.sampling.top_p,
        top_k=0,
        # ---- the objective: proxy optimized, utility logged; KL coefficient explicit
        beta=algo.kl.coef,
        reward_weights=[1.0, 0.0],
        epsilon=algo.epsilon,
        epsilon_high=None,  # symmetric ratio clip
        mask_truncated_completions=False,
        # ---- precision and memory: as loaded (no autocast), checkpointing only if asked
        bf16=False,
        fp16=False,
        **{_CHECKPOINTING_ARG: algo.gradient_checkpointing},  # TRL's default is on
        # ---- logging: every step, to us only
        report_to="none",
        logging_strategy="steps",
        logging_steps=1,
        disable_tqdm=True,
        log_completions=False,
        # ---- checkpoints: TRL's, resumable, last one kept
        save_strategy="steps" if every else "no",
        save_steps=every or 1,
        save_total_limit=1,
        save_only_model=False,
        dataloader_pin_memory=torch.cuda.is_available(),  # prompts only: nothing to pin on a CPU
        ddp_find_unused_parameters=False,  # every trainable weight is used in every forward
    )


# ============================================================================================
# Set up, resume, train, evaluate
# ============================================================================================
def run_trl(ctx: PointContext, trainer_cls, config_cls, specific: dict[str, Any]) -> PointOutput:
    """Train ctx.cfg.algo with a TRL trainer class and its config class (`specific`: that
    trainer's own arguments), then evaluate the policy on held-out prompts."""
    with preemption.handled(), warnings.catch_warnings():
        # TRL 1.16 calls transformers' deprecated `is_gradient_checkpointing` on every step: nothing a user can act on
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        return _train_and_evaluate(ctx, trainer_cls, config_cls, specific)


def _train_and_evaluate(ctx: PointContext, trainer_cls, config_cls, specific: dict[str, Any]) -> PointOutput:
    import trl
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback

    from goodhart.pipeline.base.models import load_causal_lm

    cfg, algo = ctx.cfg, ctx.cfg.algo
    seed = cfg.seed if algo.seed is None else algo.seed
    args = config_cls(**common_args(ctx, seed), **specific)
    with args.main_process_first(desc="calibration"):  # main samples (and caches) calibration completions once
        scorer = calibrated_scorer(ctx)

    # The policy is loaded from a real directory, so TRL can rebuild pi_0 from model.config._name_or_path
    # when beta > 0 (full fine-tuning); with LoRA, TRL wraps the model and pi_0 is the adapter-disabled base.
    model_cfg = cfg.model.model_copy(update={"device": str(args.device)})
    lm, tok = load_causal_lm(model_cfg, progress=ctx.progress)
    rewards = RewardBridge(scorer)
    callback = PipelineCallback(ctx, algo.kind, algo.kl.coef, rewards)
    trainer = trainer_cls(
        model=lm,
        reward_funcs=rewards.functions(),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ctx.prompts()[0]}),
        processing_class=tok,
        callbacks=[callback],
        peft_config=lora_config(algo.lora) if algo.lora is not None else None,
    )
    for printer in (PrinterCallback, ProgressCallback):  # our callback draws the bar; logs go to MLflow
        trainer.remove_callback(printer)
    resume = last_complete_checkpoint(Path(args.output_dir), remove_incomplete=args.should_save)
    callback.monitor = AlarmMonitor.start(ctx, trainer.model, None, trainer.accelerator)  # gold-free alarm
    callback.monitor.online.resume_at(checkpoint_step(resume))  # checks go on at the multiples of alarm_every
    rewards.scorer = callback.monitor.recording(scorer)

    finished = resume is not None and checkpoint_step(resume) >= algo.steps  # cut off during evaluation
    if finished:  # train() resumed at max_steps would still take one more step: load the weights only
        trainer._load_from_checkpoint(str(resume))
    elif algo.steps > 0:
        with _no_hf_bars():  # each checkpoint save would draw a "Writing model shards" bar over ours
            trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    if callback.preempted_at is not None:
        raise preemption.Preempted(
            f"preempted ({preemption.reason()}) after step {callback.preempted_at}; checkpoint "
            f"{last_complete_checkpoint(Path(args.output_dir), remove_incomplete=False)}; re-run the point to resume"
        )

    callback.monitor.restore(trainer.model)  # after an alarm stop: the last policy the alarm found quiet
    # ---- our held-out evaluation: the same KL measurement (goodhart.pipeline.train.kl, seq_k1) as every other optimizer
    acc = trainer.accelerator
    policy = acc.unwrap_model(trainer.model)
    if algo.lora is not None:
        reference = Reference(adapter_of=policy)
    else:
        trainer.ref_model = None  # TRL's copy (fused-head patched, maybe prepared): use a plain one of ours
        frozen, _ = load_causal_lm(model_cfg, progress=False)
        reference = Reference(frozen=frozen.requires_grad_(False).eval())
    out = evaluate_policy(ctx, trainer.model, reference, tok, scorer, algo.eval_samples, acc, seed)
    out.row.update(
        {
            M.TRAIN_STEPS: checkpoint_step(resume) if finished else int(trainer.state.global_step),
            M.RESUMED_FROM: checkpoint_step(resume),
            M.KL_COEF: algo.kl.coef,
            M.TRL_VERSION: trl.__version__,
        }
    )
    if callback.step_seconds:
        out.row[M.STEP_SECONDS] = float(np.mean(callback.step_seconds))  # mean over this session's steps
    out.row.update(callback.monitor.row())
    return out
