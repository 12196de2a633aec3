"""The gold-free Goodhart alarm (goodhart.eval.alarm) online in the pipeline's trained optimizers.

    monitor = AlarmMonitor.start(ctx, model, gather)     # wraps nothing yet; snapshots the start policy
    sess.scorer = monitor.recording(sess.scorer)          # every proxy the loop scores is seen
    ... each step: metrics.update(monitor.check(step, kl, model)); if monitor.stopped: break
    monitor.restore(model); out.row.update(monitor.row())

The schedule, the window a check reads, the cross-process agreement and the rule are the one
online alarm's (train/online_alarm.py OnlineAlarm, shared with goodhart.integrations.trl): every
`algo.alarm_every` steps (bon-ft: rounds) the alarm reads the proxies the step scored (the training
batch, gathered over processes), the step's KL and the base pool's proxies, under the run's rule
(`alarm:` keys, ctx.alarm_rule), and is logged with the step's metrics. Utility is never passed in.

With `algo.alarm_samples` > 0 and a `probe` (the trained loop gives one), each check reads a
fresh batch instead: that many samples per eval prompt from the current policy (the base
pool's own prompts, so each is centred on its prompt's base mean), with their own measured KL.
A training batch of 32 samples on prompts the pool never saw swings from check to check; the
probe's batch is larger and its prompt-to-prompt spread is removed. Its RNG is forked: the
training stream is the same with and without it.

With `algo.stop_on_alarm`, a check at level `alarm` stops the run, and the policy evaluated and
kept is the last one a check found quiet (the last not flagged): an in-memory copy of the trainable
weights taken at that check (the start policy if none was; with DeepSpeed ZeRO-3 each process
copies its shard).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from goodhart.eval import metrics as M
from goodhart.eval.alarm import Alarm, AlarmRule, BaseStats
from goodhart.pipeline.train.online_alarm import OnlineAlarm, is_training_log, trl_sequence_kl


class RecordingScorer:
    """A Scorer that also keeps the proxies it returned since the last `take()`."""

    def __init__(self, inner):
        self._inner, self._seen = inner, []

    def components(self, prompts, completions):
        parts = self._inner.components(prompts, completions)
        self._seen.append(np.asarray(parts["proxy"], dtype=np.float64).ravel())
        return parts

    def take(self) -> np.ndarray:
        out = np.concatenate(self._seen) if self._seen else np.empty(0)
        self._seen = []
        return out

    def __getattr__(self, name: str) -> Any:  # clip, error, utility ...: the inner scorer's
        return getattr(self._inner, name)


def _trainable(model) -> dict[str, Any]:
    import torch

    with torch.no_grad():
        return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


class AlarmMonitor:
    def __init__(
        self,
        ctx,
        every: int,
        stop: bool,
        gather=None,
        accelerator=None,
        rule: AlarmRule | None = None,
        probe: Callable[[Any, int], tuple[np.ndarray, float]] | None = None,
        start_step: int = 0,
    ):
        self.ctx, self.acc = ctx, accelerator
        self.rule = rule if rule is not None else ctx.alarm_rule
        self.probe = probe  # (model, step) -> ((P, M) fresh proxies on the pool's prompts, their mean KL)
        every = every if every > 0 else (1 if stop else 0)
        device = accelerator.device if accelerator is not None else None
        self.online = OnlineAlarm(self.rule, every, stop, gather, device, start_step)
        self.scorer: RecordingScorer | None = None
        self._base: BaseStats | None = None
        self._pool_base: BaseStats | None = None
        self.kept_step = start_step
        self._snapshot: dict[str, Any] | None = None

    @classmethod
    def start(cls, ctx, model, gather=None, accelerator=None, start_step: int = 0, probe=None) -> AlarmMonitor:
        """probe: used when `algo.alarm_samples` > 0 (see the module's docstring)."""
        algo = ctx.cfg.algo
        probe = probe if getattr(algo, "alarm_samples", 0) else None
        mon = cls(ctx, algo.alarm_every, algo.stop_on_alarm, gather, accelerator, probe=probe, start_step=start_step)
        if mon.stop:
            mon._snapshot = _trainable(model)  # the policy to fall back on if the first check alarms
        return mon

    @property
    def every(self) -> int:
        return self.online.every

    @property
    def stop(self) -> bool:
        return self.online.stop

    @property
    def last(self) -> Alarm | None:
        return self.online.last.alarm if self.online.last is not None else None

    @property
    def stopped_at(self) -> int | None:
        return self.online.stopped_at

    @property
    def stopped(self) -> bool:
        return self.online.stopped_at is not None

    def recording(self, scorer) -> RecordingScorer:
        self.scorer = scorer if isinstance(scorer, RecordingScorer) else RecordingScorer(scorer)
        return self.scorer

    def _pool(self):
        import contextlib

        import torch

        # Sampling the pool reseeds torch: fork the RNG so the training stream (and a resumed
        # run, which finds the pool cached and samples nothing) stays what it was without the alarm.
        with torch.random.fork_rng():
            with self.acc.main_process_first() if self.acc is not None else contextlib.nullcontext():
                return self.ctx.pool()  # main samples (or loads) the base pool, the others load it

    def base(self) -> BaseStats:
        """Global-mean base statistics of the base pool (the training prompts are not the pool's)."""
        if self._base is None:
            pool = self._pool()
            # with the null's replicates, so the base pool's tail-shape test joins the gain test
            # (eval/alarm.py significant: each at alpha / 2), as in the pool-based alarm
            self._base = BaseStats.for_rule(pool.proxy, self.rule, per_prompt=False)
        return self._base

    def pool_base(self) -> BaseStats:
        """Per-prompt base statistics of the base pool, for the probe's samples on its prompts
        (the same memoised statistics the final evaluation's alarm reads)."""
        from goodhart.pipeline.base.ensemble import base_stats

        if self._pool_base is None:  # once per run, as base(): no barrier or RNG fork per check
            self._pool_base = base_stats(self._pool().proxy, self.rule)
        return self._pool_base

    def check(self, step: int, kl: float | None, model=None) -> dict[str, float]:
        """Call once per step (every process): the alarm's metrics when a check is due, else {}."""
        proxies = self.scorer.take() if self.scorer is not None else np.empty(0)  # the step's window
        if not self.online.due(step):
            return {}
        if self.probe is not None and model is not None:
            fresh, k = self.probe(model, step)  # every process: sampling may be a collective
            c = self.online.read(step, fresh, k, self.pool_base(), gathered=True)
        else:
            c = self.online.read(step, proxies, kl, self.base())
        if c is None:  # nothing scored since the last step, on any process: still due
            return {}
        if c.level == "quiet" and self.stop and model is not None:
            self._snapshot, self.kept_step = _trainable(model), step
        return c.metrics()

    def check_trl(self, step: int, logs: dict | None, model) -> dict[str, float]:
        """`check` from a TRL log: the proxies scored since the last log (gathered over processes),
        sequence KL ~ TRL's per-token `kl` x `completions/mean_length` (k3 for GRPO, k1 for RLOO;
        absent at beta = 0). Adds "stop": 1.0 when the agreed level stops the run (a collective:
        call on every process)."""
        if not is_training_log(logs):
            return {}
        out = self.check(step, trl_sequence_kl(logs), model)
        if out and self.online.last is not None and self.online.last.stop:
            out["stop"] = 1.0
        return out

    def restore(self, model) -> None:
        """After a stop: load the last quiet weights back into `model`."""
        if not self.stopped or self._snapshot is None:
            return
        import torch

        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in self._snapshot:
                    p.copy_(self._snapshot[n].to(p.device))

    def row(self) -> dict[str, float]:
        """Result-row entries: where the run stopped and which step's policy was kept."""
        if not self.stopped:
            return {}
        return {M.ALARM_STOPPED: float(self.stopped_at), M.ALARM_KEPT: float(self.kept_step)}
