"""Preemption for trained optimizers: poll once per step; on a request, checkpoint and stop.

The signals (SIGUSR1 before SLURM's time limit, SIGTERM on preemption or scancel) are turned
into a flag by `pipeline.preempt`; this module adapts it to training sessions:
`handled()` installs the handler for the duration of a training run only (a local sweep's
other points keep the default SIGTERM), `requested()` reads the flag, and `Preempted` is
what a session raises after saving its checkpoint: a SystemExit with preempt.EXIT_REQUEUE
(75), so `run_point` records it in error.json (the point is not done), the process exits 75,
and the sbatch script requeues the task, which resumes from the checkpoint.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from pipeline import preempt


class Preempted(SystemExit):
    """Training stopped on a preemption request after saving a checkpoint; re-run to resume."""

    def __init__(self, message: str):
        super().__init__(preempt.EXIT_REQUEUE)
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGUSR1 / SIGTERM set the flag instead of killing, inside this block (main thread only:
    Python delivers signals there; elsewhere the default handling stays)."""
    if threading.current_thread() is not threading.main_thread() or preempt._installed:
        yield  # not ours to install (a worker thread), or already installed by the caller
        return
    preempt.install_handler()
    try:
        yield
    finally:
        preempt.uninstall_handler()


def requested() -> bool:
    """True once a preemption or time-limit signal has arrived."""
    return preempt.requested()


def reason() -> str:
    return preempt.reason() or "requested"
