"""How many torch/OpenMP threads a process should use: the cores that are actually free.

torch starts one thread per core whatever else runs there; on a shared 2-core node that made
the tiny model's build and `make demo` 4.5x slower than one thread (two threads time-slicing
with the neighbours, each OpenMP barrier waiting for the slowest). `choose_threads(jobs)`
measures the idle share of the cores this process may use over a short window and gives each
of `jobs` processes `free // jobs` of them (at least 1). $OMP_NUM_THREADS, when set, is an
upper bound (the user's word wins); $GOODHART_THREADS sets the count outright.

OpenMP's default wait policy spins a thread for a while after each parallel region, burning
a core the neighbours need; the CLI sets OMP_WAIT_POLICY=PASSIVE (before torch is imported)
unless the user set it: benchmarks/bench_threads.py measures both.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

# The user's own cap, read before pin_threads (below) rewrites the variable for child processes.
_USER_CAP = os.environ.get("OMP_NUM_THREADS", "")


def usable_cores() -> int:
    """Cores this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _cpu_times() -> dict[str, tuple[int, int]]:
    """cpuN -> (idle ticks, total ticks) from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if name.startswith("cpu") and name != "cpu":
            v = [int(x) for x in vals]
            out[name] = (v[3] + (v[4] if len(v) > 4 else 0), sum(v[:8]))
    return out


def free_cores(window: float = 0.25) -> float:
    """Idle cores (fractional) among this process's usable ones over `window` seconds; the
    usable count when /proc/stat cannot be read."""
    usable = usable_cores()
    try:
        cpus = [f"cpu{i}" for i in os.sched_getaffinity(0)] if hasattr(os, "sched_getaffinity") else None
        a = _cpu_times()
        time.sleep(window)
        b = _cpu_times()
    except (OSError, ValueError, IndexError):
        return float(usable)
    names = [c for c in (cpus or list(b)) if c in a and c in b]
    idle = sum(b[c][0] - a[c][0] for c in names)
    total = sum(b[c][1] - a[c][1] for c in names)
    if total <= 0:
        return float(usable)
    return min(float(usable), len(names) * idle / total)


def choose_threads(jobs: int = 1) -> int:
    """Threads for each of `jobs` processes sharing this machine's free cores (>= 1)."""
    explicit = os.environ.get("GOODHART_THREADS", "")
    if explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    n = max(1, int(free_cores() + 0.5) // max(1, jobs))
    if _USER_CAP.isdigit() and int(_USER_CAP) > 0:
        n = min(n, int(_USER_CAP))
    return n


def pin_threads(n: int) -> None:
    """Pin BLAS/torch threads of this process (and of the processes it starts) to n."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    # A torch imported later reads OMP_NUM_THREADS (set above); importing it here would cost every
    # process that never needs it (a distributional sweep's workers) ~2 s of CPU.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def child_threads(n: int):
    """Within: the processes this one starts get n BLAS/OpenMP threads. They must have it in their
    environment when they start: a spawned worker imports numpy (and OpenBLAS sizes its pool, one
    thread per core) before any initializer runs, so pin_threads there is too late for numpy.
    Two workers of two OpenBLAS threads each on 2 cores made every point of the distributional
    sweep 1.8x slower than one process alone."""
    with temporary_environ({v: str(n) for v in THREAD_VARS}):
        yield


@contextlib.contextmanager
def temporary_environ(values: dict[str, str]):
    """Within: these environment variables set; after: each back as it was (unset if it was)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def passive_waits() -> None:
    """OpenMP threads sleep instead of spinning between parallel regions (unless the user chose);
    read by libgomp when torch loads, so call this before importing torch."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
