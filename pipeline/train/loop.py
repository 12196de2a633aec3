"""The skeleton every hand-written trained optimizer shares (ppo, bon-ft): set up, resume,
iterate, log, checkpoint, stop on preemption or on the alarm, restore, evaluate. Each
optimizer brings only its own step (and what it keeps in a checkpoint besides the weights).

    t = Training.start(ctx, wrap=PolicyWithValue)      # session, policy, pi_0, tokenizer, AdamW
    out = t.run(Steps(...))                              # -> PointOutput of the held-out evaluation
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from goodhart.eval import metrics as M
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.measure import PointOutput
from goodhart.pipeline.train.alarm_monitor import AlarmMonitor
from goodhart.pipeline.train.evaluate import evaluate_policy, sample_policy
from goodhart.pipeline.train.policy import load_policy
from goodhart.pipeline.train.session import TrainSession


@dataclass
class Steps:
    """What one optimizer brings to the loop.

    step(i) -> metrics of iteration i (M.STEP_SECONDS included: the step's own time);
    state() -> what a checkpoint keeps besides weights, optimizer and RNG; load(state) on resume;
    saves(done) -> whether to checkpoint after `done` iterations; postfix(metrics) -> progress bar;
    row(start) -> the optimizer's own columns of the result row."""

    desc: str
    unit: str
    total: int
    step: Callable[[int], dict[str, float]]
    state: Callable[[], dict[str, Any]]
    load: Callable[[dict[str, Any]], None]
    saves: Callable[[int], bool]
    postfix: Callable[[dict[str, float]], dict[str, str]]
    row: Callable[[int], dict[str, Any]] = field(default=lambda start: {})


PROBE_SEED = 7_000_003  # the probe's torch seeds: away from the evaluation's (seed * 1000 + rank)


@dataclass
class Training:
    ctx: PointContext
    seed: int
    sess: TrainSession
    model: Any
    ref: Any
    tok: Any
    opt: Any

    @classmethod
    def start(cls, ctx: PointContext, wrap: Callable[[Any], Any] = lambda lm: lm) -> Training:
        """TrainSession, the trainable policy (`wrap`ped: PPO adds its value head), pi_0, the
        tokenizer, AdamW over the trainable parameters; all prepared for the accelerator."""
        import torch

        cfg, algo = ctx.cfg, ctx.cfg.algo
        seed = cfg.seed if algo.seed is None else algo.seed
        sess = TrainSession.start(ctx, seed)
        lm, ref, tok = load_policy(cfg, algo.lora, progress=ctx.progress, device=sess.accelerator.device)
        model = wrap(lm)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=algo.lr, weight_decay=algo.weight_decay)
        model, opt = sess.prepare(model, opt, algo.minibatch)
        ref.to(sess.accelerator.device)
        return cls(ctx, seed, sess, model, ref, tok, opt)

    def probe(self, scorer) -> Callable[[Any, int], tuple[np.ndarray, float]]:
        """The alarm's fresh batch at a check (`algo.alarm_samples` per eval prompt; used only when
        that is > 0): (P, M) proxies and their mean sequence KL to pi_0, from `scorer` (not the
        recording one: these samples are not the training batch's). Seeded by (seed, step)."""
        ctx, n = self.ctx, self.ctx.cfg.algo.alarm_samples

        def fresh(model, step: int) -> tuple[np.ndarray, float]:
            stack, _ = sample_policy(
                ctx,
                model,
                self.ref,
                self.tok,
                scorer,
                n,
                self.sess.accelerator,
                PROBE_SEED + 1000 * (self.seed * 1000 + step),
            )
            return stack["proxy"], float(stack["k1"].mean())

        return fresh

    def run(self, steps: Steps) -> PointOutput:
        """Resume from the latest checkpoint, iterate to steps.total with the gold-free alarm
        checked after every iteration, then evaluate the policy (the last quiet one after a stop)."""
        from tqdm.auto import tqdm

        ctx, sess, model = self.ctx, self.sess, self.model
        start = 0
        last = sess.checkpoints.latest()
        if last is not None:  # resume: weights, optimizer, RNG states, the iteration, the optimizer's own state
            state = sess.checkpoints.load(last)
            start = int(state["step"])
            steps.load(state)
        bar = tqdm(
            range(start, steps.total),
            desc=steps.desc,
            unit=steps.unit,
            disable=not (ctx.progress and sess.is_main),
            leave=False,
        )
        seconds: list[float] = []
        monitor = AlarmMonitor.start(
            ctx, model, sess.gather_array, sess.accelerator, start, probe=self.probe(sess.scorer)
        )  # every alarm_every
        sess.scorer = monitor.recording(sess.scorer)
        for i in bar:
            metrics = steps.step(i)
            done = i + 1
            metrics.update(monitor.check(done, metrics.get(M.KL), model))
            sess.log(metrics, done)
            seconds.append(metrics[M.STEP_SECONDS])
            bar.set_postfix(**steps.postfix(metrics))
            state = steps.state()
            saved = steps.saves(done)
            if saved:
                sess.checkpoints.save(done, state)
            sess.check_preemption(done, state, saved)
            if monitor.stopped:  # algo.stop_on_alarm
                break
        bar.close()
        monitor.restore(model)  # after a stop: the last policy the alarm found quiet

        algo = ctx.cfg.algo
        out = evaluate_policy(
            ctx, model, self.ref, self.tok, sess.scorer, algo.eval_samples, sess.accelerator, self.seed
        )
        out.row.update(monitor.row())
        out.row.update(steps.row(start))
        if seconds:
            out.row[M.STEP_SECONDS] = float(np.mean(seconds))  # mean seconds per iteration, this session
        return out
