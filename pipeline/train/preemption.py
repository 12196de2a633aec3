"""Preemption and time-limit warnings, as a flag a training loop polls; one module for the
whole concern: signals -> flag -> checkpoint -> exit 75 -> requeue -> resume.

Where the signals come from: slurm/sweep_array.sbatch asks SLURM for SIGUSR1 120 s before a
task's time limit (`#SBATCH --signal=B:USR1@120`); preemption and `scancel` send SIGTERM.
The script forwards both to the point's process group (every accelerate/torchrun rank).

The contract for a point that runs long enough to be cut off (the trained optimizers: ppo,
rloo, grpo, bon-ft), on every rank:

    from goodhart.pipeline.train import preemption as preempt
    with preempt.handled():                # SIGUSR1/SIGTERM -> a flag, for this run only
    start = load_checkpoint_if_any(point_dir)
    for step in range(start, steps):
        train_step(...)
        # Poll at a safe place (after an optimizer step). Under DDP make the ranks agree first
        # (any_process: a sum-all-reduce of the flag), so no rank leaves while another waits in a collective.
        if preempt.requested():
            save_checkpoint(point_dir, step)    # atomically (goodhart.pipeline.io), main process only
            preempt.exit_for_requeue()     # exits with EXIT_REQUEUE = 75
    write the result                       # result.json: only a finished point writes it

On exit code 75 (or any non-zero exit after the USR1 warning) the sbatch script requeues the
task (`scontrol requeue`, at most GOODHART_MAX_REQUEUES times, default 3); the requeued task
runs the same point, which resumes from its checkpoint. A point must never write result.json
when it stops early: result.json is the done marker, and a requeue or `--resume` skips done
points (`Preempted` below is that exit: a SystemExit(75) that run_point records as
preempted.json, pending, not failed). A point that never installs the handler is simply killed by the signal (its default
action) and starts over when requeued: fine for short points (tilt, best-of-n).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

EXIT_REQUEUE = 75  # EX_TEMPFAIL: "try again later"; slurm/sweep_array.sbatch requeues on it
SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

_flag = threading.Event()
_reason: list[str] = []
_installed: dict[int, object] = {}


def _handler(signum: int, frame: object) -> None:
    _reason.append(signal.Signals(signum).name)
    _flag.set()


def install_handler(signals: tuple[signal.Signals, ...] = SIGNALS) -> None:
    """Turn SIGUSR1 / SIGTERM into the flag `requested()` reads (instead of dying). Idempotent.
    Must be called from the main thread (Python delivers signals there)."""
    for s in signals:
        if s not in _installed:
            _installed[s] = signal.signal(s, _handler)


def uninstall_handler() -> None:
    """Restore the handlers that were in place before install_handler()."""
    for s, old in list(_installed.items()):
        signal.signal(s, old)  # type: ignore[arg-type]
        del _installed[s]


def requested() -> bool:
    """True once a preemption / time-limit signal has arrived (or request() was called)."""
    return _flag.is_set()


def reason() -> str:
    """The first signal's name (SIGUSR1, SIGTERM, or 'request'), or 'requested'."""
    return _reason[0] if _reason else "requested"


def request(why: str = "request") -> None:
    """Set the flag from code (tests, or a trainer that tracks its own time budget)."""
    _reason.append(why)
    _flag.set()


def reset() -> None:
    _flag.clear()
    _reason.clear()


def exit_for_requeue(message: str = "") -> NoReturn:
    """Exit with EXIT_REQUEUE after the checkpoint is saved: the sbatch script requeues the task."""
    print(
        f"goodhart: preempted ({reason()}); checkpoint saved, exiting {EXIT_REQUEUE} for requeue"
        + (f": {message}" if message else ""),
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(EXIT_REQUEUE)


class Preempted(SystemExit):
    """Training stopped on a preemption request after saving a checkpoint; re-run to resume."""

    def __init__(self, message: str):
        super().__init__(EXIT_REQUEUE)
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGUSR1 / SIGTERM set the flag instead of killing, inside this block (main thread only:
    Python delivers signals there; elsewhere the default handling stays)."""
    if threading.current_thread() is not threading.main_thread() or _installed:
        yield  # not ours to install (a worker thread), or already installed by the caller
        return
    install_handler()
    try:
        yield
    finally:
        uninstall_handler()


def any_process(flag: bool, device) -> bool:
    """True on every process when `flag` is True on any of them (a sum over the process group),
    so that all stop at the same step; the flag itself without torch.distributed."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t)
    return t.item() > 0
