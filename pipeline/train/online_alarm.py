"""The one online alarm: the gold-free alarm (goodhart.eval.alarm) read while a policy trains.

Every trainer that reads the alarm online goes through ``OnlineAlarm``: the trained optimizers
(ppo and bon-ft through train/loop.py, rloo and grpo through optimizers/trl_common.py's callback,
both by train/alarm_monitor.py's AlarmMonitor) and the public TRL callback
(goodhart.integrations.trl.GoodhartCallback). One schedule, one window, one agreement:

- **Schedule.** A check is due at the first step the trainer reports (a step of our loops, a log
  of TRL's) at or after each multiple of ``every``: steps every, 2 every, ... when every step
  reports; with TRL's ``logging_steps`` not dividing ``every``, the first log past each multiple.
- **Window.** A check reads the samples scored since the previous report -- the step's batch (a
  log's steps under TRL's ``logging_steps`` > 1, whose logged KL averages the same steps) -- with
  that report's KL. Samples of the steps between checks are not read: the policy has moved since
  they were drawn, and pooled beside the newest KL they would read older, less optimized samples
  as the policy at that KL (a check late by that much). A due check whose window is empty (a TRL
  step that reuses its batch) waits for the next report with samples.
- **Agreement.** The window is gathered over processes, so every process reads the same samples;
  the level acted on is the highest any process read (a max over the process group: the same
  reading everywhere, or the worst if bases differ), so all stop at the same step.
- **Last not flagged.** ``last_quiet_step`` is the last check that read ``quiet``: the last policy
  the alarm did not flag (not the best one: the alarm does not locate the utility's turn).

Utility is never passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from goodhart.eval.alarm import LEVELS, Alarm, AlarmRule, BaseStats, alarm

Gather = Callable[[Any], list[Any]]
"""obj -> [every process's obj] (in rank order; [obj] without torch.distributed)."""


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (a collective: every process calls it); [obj] when
    torch.distributed is not running."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_array(values: np.ndarray) -> np.ndarray:
    """A per-process 1-d array concatenated over processes (any lengths), in rank order."""
    parts = gather_objects(np.asarray(values, dtype=np.float64).ravel())
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def highest_level(level: str, device: Any = None) -> str:
    """The highest level any process read (a collective; the level itself without
    torch.distributed). A level this module does not know counts as ``alarm``."""
    import torch.distributed as dist

    code = LEVELS.index(level) if level in LEVELS else len(LEVELS) - 1
    if not (dist.is_available() and dist.is_initialized()):
        return LEVELS[code]
    import torch

    if device is None:  # NCCL reduces CUDA tensors only
        device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(code)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return LEVELS[int(t.item())]


@dataclass
class Check:
    """One online check."""

    step: int
    """The step (or log) it was read at."""
    alarm: Alarm
    """The reading (the same on every process: the window is gathered)."""
    level: str
    """The level every process acts on: the highest any process read."""
    proxies: np.ndarray
    """The window's proxies as read (gathered over processes)."""
    kl: float
    """The window's sequence KL to the base (NaN: unknown; the gain test is then skipped)."""
    stop: bool
    """stop_on_alarm and the level is ``alarm``: every process stops here."""

    @property
    def code(self) -> float:
        """The agreed level as a number (eval/metrics.py ALARM_CODE: quiet 0, watch 1, alarm 2)."""
        return float(LEVELS.index(self.level))

    def metrics(self) -> dict[str, float]:
        """The reading's numbers by metric name (eval/metrics.py; MLflow takes numbers only), its
        code the agreed level's."""
        from goodhart.eval import metrics as M

        out = {k: v for k, v in self.alarm.row().items() if isinstance(v, float)}
        out[M.ALARM_CODE] = self.code
        return out


class OnlineAlarm:
    """Schedule, window, agreement and bookkeeping of an online alarm (the module docstring).

    ``rule``: the AlarmRule (a run's, from its config); ``every``: steps between checks (>= 1; 0:
    never); ``stop``: stop at a check of level ``alarm``; ``gather``: a per-process 1-d array ->
    the global one (default: torch.distributed's, or the array itself); ``device``: where the
    level agreement reduces (default: CPU, or the current CUDA device under NCCL); ``start_step``:
    a resumed run's step (checks continue at the next multiple); other keywords go to the alarm
    (``others``, ...)."""

    def __init__(
        self,
        rule: AlarmRule,
        every: int,
        stop: bool = False,
        gather: Callable[[np.ndarray], np.ndarray] | None = None,
        device: Any = None,
        start_step: int = 0,
        **alarm_options: Any,
    ):
        self.rule, self.every, self.stop = rule, int(every), bool(stop)
        self.gather = gather or gather_array
        self.device, self.alarm_options = device, alarm_options
        self.last_check = int(start_step)
        self.last: Check | None = None
        self.last_quiet_step = int(start_step)
        self.stopped_at: int | None = None

    def resume_at(self, step: int) -> None:
        """A run resumed at ``step``: the next check is due at the next multiple of every."""
        self.last_check = int(step)

    def due(self, step: int) -> bool:
        """Is a check due at this step (the first report at or after the next multiple of every)?"""
        return self.every > 0 and step // self.every > self.last_check // self.every

    def read(
        self, step: int, samples: np.ndarray, kl: float | None, base: BaseStats, gathered: bool = False
    ) -> Check | None:
        """The check at a due ``step`` (every process calls it): ``samples`` are this process's
        window of proxies (a flat batch, gathered here) or, ``gathered``, samples every process
        already holds in full (a (P, M) fresh batch on the base pool's prompts); ``kl`` the
        window's sequence KL. None when the window is empty everywhere (the check stays due)."""
        x = np.asarray(samples, dtype=np.float64)
        if not gathered:
            x = self.gather(x.ravel())
        if x.size == 0:
            return None
        k = float(kl) if kl is not None and math.isfinite(float(kl)) else float("nan")
        a = alarm(x, k, base, rule=self.rule, **self.alarm_options)
        level = highest_level(a.level, self.device)
        self.last_check = step
        if level == "quiet":
            self.last_quiet_step = step
        stop = self.stop and level == "alarm"
        if stop and self.stopped_at is None:
            self.stopped_at = step
        self.last = Check(step, a, level, x, k, stop)
        return self.last


# ---- TRL's logs (both TRL callbacks read them the same way) ---------------------------------
def is_training_log(logs: dict | None) -> bool:
    """A TRL log of training steps (not an evaluation's, not the end-of-training summary)."""
    logs = logs or {}
    return not (any(str(k).startswith("eval_") for k in logs) or "train_runtime" in logs)


def trl_sequence_kl(logs: dict | None) -> float:
    """A TRL log's sequence KL: its per-token ``kl`` x ``completions/mean_length`` (k3 for GRPO, k1
    for RLOO; NaN when either is absent, e.g. at beta = 0)."""
    logs = logs or {}
    kl, length = logs.get("kl"), logs.get("completions/mean_length")
    return float(kl) * float(length) if kl is not None and length is not None else float("nan")
