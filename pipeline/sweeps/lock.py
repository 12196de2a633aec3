"""One runner per sweep directory: `goodhart sweep` (and `run`, and a SLURM submission) claims
<sweep dir>/.goodhart.lock for as long as it works there.

The claim is an flock on the file, so the kernel drops it when its holder dies, kill -9
included: a stale lock needs no clean-up, the next runner simply takes it over (and says so).
The file's text names the holder (pid, host, command, since) for the message the next runner
prints. The file is never deleted: unlinking a lock file lets two processes each lock a
different inode.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from goodhart.pipeline.errors import SweepBusyError

LOCK = ".goodhart.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SweepLock:
    """`with SweepLock(root):` holds the sweep directory, or raises SweepBusyError naming the holder."""

    def __init__(self, root: Path, quiet: bool = False):
        self.root, self.quiet = Path(root), quiet
        self.path = self.root / LOCK
        self.fd: int | None = None

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> SweepLock:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            h = self._holder()
            who = f"pid {h.get('pid', '?')} on {h.get('host', '?')}" + (f" since {h['since']}" if "since" in h else "")
            raise SweepBusyError(
                f"{self.root} is in use by another goodhart run ({who}: {h.get('command', '?')}); "
                "wait for it to finish or stop it, then run again"
            ) from None
        old = self._holder()
        here = socket.gethostname()
        if old.get("pid") and not self.quiet:
            dead = old.get("host") != here or not _alive(int(old["pid"]))
            if dead:
                print(
                    f"goodhart: notice: {self.root}: taking over the lock of pid {old['pid']} on {old.get('host', '?')}, "
                    "which ended without releasing it",
                    file=sys.stderr,
                )
        info = {
            "pid": os.getpid(),
            "host": here,
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": " ".join(["goodhart", *sys.argv[1:]])[:300],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # empty: nobody holds it (the file itself stays, see above)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
