"""What every trained optimizer sets up the same way: the Accelerator, seeds, the calibrated
scorer, the prompt stream, preemption and checkpoints.

    with preemption.handled():                  # SIGUSR1/SIGTERM -> a flag, for this run only
        sess = TrainSession.start(ctx, seed)
        ... prepare, resume from sess.checkpoints.latest(), train, sess.check_preemption(...) each step
        return evaluate_policy(...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.scoring import Scorer
from goodhart.pipeline.train import preemption
from goodhart.pipeline.train.checkpoint import Checkpointer


def make_accelerator():
    """An Accelerator that runs unchanged alone, under `accelerate launch` (DDP) or DeepSpeed.
    Several processes without CUDA use gloo: without it accelerate counts 1 process where
    DeepSpeed counts 2, and DeepSpeed's batch-size check fails. A single process gets no backend
    at all."""
    import os

    import torch
    from accelerate import Accelerator, InitProcessGroupKwargs

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    handlers = [InitProcessGroupKwargs(backend="gloo")] if distributed and not torch.cuda.is_available() else []
    return Accelerator(kwargs_handlers=handlers)


def calibrated_scorer(ctx: PointContext) -> Scorer:
    """The run's Scorer; a feature-mode error is fitted on base samples of the train prompts by
    `goodhart.pipeline.base.pool.calibrate`, the same fit (and cached samples) the base pool uses."""
    from goodhart.pipeline.base.pool import calibrate

    scorer = Scorer(ctx.cfg)
    calibrate(ctx.cfg, scorer, ctx.prompts()[0], ctx.progress)
    return scorer


def prompt_batch(
    prompts: list[str], per_process: int, step: int, seed: int, rank: int = 0, world: int = 1
) -> list[str]:
    """The prompts process `rank` trains on at `step`: a function of (seed, step) only, so a
    resumed run sees the same stream as an uninterrupted one. Without replacement when the
    global batch fits in the prompt set."""
    rng = np.random.default_rng([seed, step])
    total = per_process * world
    idx = rng.choice(len(prompts), size=total, replace=total > len(prompts))
    return [prompts[i] for i in idx[rank * per_process : (rank + 1) * per_process]]


@dataclass
class TrainSession:
    """Shared state of one trained point. Build with `TrainSession.start(ctx, seed)`."""

    ctx: PointContext
    accelerator: Any
    scorer: Scorer
    checkpoints: Checkpointer
    seed: int

    @classmethod
    def start(cls, ctx: PointContext, seed: int) -> TrainSession:
        from accelerate.utils import set_seed

        acc = make_accelerator()
        with acc.main_process_first():  # main samples (and caches) calibration completions once
            scorer = calibrated_scorer(ctx)
        set_seed(seed, device_specific=True)  # after calibration, which may reseed; + process index
        return cls(ctx, acc, scorer, Checkpointer(acc, ctx.point_dir / "checkpoints"), seed)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def prepare(self, model, optimizer, micro_batch: int):
        """accelerator.prepare(model, optimizer). DeepSpeed sizes its batches from a dataloader,
        and RL has none: an `auto` micro-batch in its config becomes our minibatch size."""
        plugin = self.accelerator.state.deepspeed_plugin
        if plugin is not None and plugin.is_auto("train_micro_batch_size_per_gpu"):
            plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro_batch
        return self.accelerator.prepare(model, optimizer)

    def train_prompts(self, per_process: int, step: int) -> list[str]:
        acc = self.accelerator
        return prompt_batch(self.ctx.prompts()[0], per_process, step, self.seed, acc.process_index, acc.num_processes)

    def gather_array(self, values) -> np.ndarray:
        """Concatenate a per-process 1-d array over processes (float64 numpy)."""
        import torch

        t = torch.as_tensor(np.asarray(values, dtype=np.float64), device=self.accelerator.device)
        return self.accelerator.gather(t).cpu().numpy()  # no dataloader: nothing to de-duplicate

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.is_main:
            self.ctx.log_metrics(metrics, step)

    def check_preemption(self, step: int, state: dict[str, Any], saved: bool = False) -> None:
        """If a preemption was requested (any process), checkpoint at `step` (unless `saved` says
        that was just done) and raise Preempted: the point is not marked done, and the requeued
        task resumes from here."""
        if preemption.any_process(preemption.requested(), self.accelerator.device):  # all stop at one step
            path = self.checkpoints.latest() if saved else self.checkpoints.save(step, state)
            raise preemption.Preempted(
                f"preempted ({preemption.reason()}) after step {step}; checkpoint {path}; re-run the point to resume"
            )
