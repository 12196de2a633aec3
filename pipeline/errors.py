"""Every error that means "the user asked for something that cannot be done", in one place.

The CLI prints these as one line (`goodhart: error: ...`) and exits 2; anything else is a bug
and keeps its traceback. Each message names the key, file or value and says what was expected.
"""

from __future__ import annotations

from goodhart.rewards.base import RewardError


class UserError(Exception):
    """Base of the pipeline's user mistakes."""


class ConfigError(UserError):
    """A user mistake in a config: the message names the key/file and what was expected."""


class PromptError(UserError):
    """A prompt source that cannot give what the config asks for."""


class SlurmError(UserError):
    """A submission or query that cannot go ahead; the message says why and what to do."""


class UsageError(UserError):
    """A bad command line (beyond argparse's own checks)."""


class TrackingError(UserError):
    """The tracking store or server cannot be used: the message names the URI and what to do."""


class SweepDirError(UserError):
    """A sweep directory's own file is torn or foreign (truncated, another shape, another
    version): the message names the file and what to do."""


class SweepBusyError(UserError):
    """Another live process holds the sweep directory; the message names it (pid, host, since)."""


# What the CLI reports as one line: ours, the reward package's (rewards may not import the
# pipeline, so RewardError lives there), and a missing file.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, RewardError, FileNotFoundError)


# OS errors that describe the user's machine, not a bug: one line naming the file, and what to do.
_OS_HINTS = {
    "EACCES": "not writable (or readable) by you: choose another directory or fix its permissions",
    "EPERM": "not permitted: choose another directory or fix its permissions",
    "EROFS": "on a read-only file system: choose another output directory",
    "ENOSPC": "the disk is full: free space and re-run (finished points are kept)",
    "EDQUOT": "your disk quota is exceeded: free space and re-run (finished points are kept)",
    "ENOTDIR": "a path component is a file, not a directory: choose another path",
    "EISDIR": "is a directory where a file was expected",
    "EEXIST": "already exists and is not a directory: choose another path",
    "ENAMETOOLONG": "the name is too long for the file system: shorten it",
    "ELOOP": "symbolic links that point at each other (a loop): choose another path or fix the link",
}


def os_error_line(e: OSError) -> str | None:
    """`<file>: <what the OS said>; <what to do>` for the OS errors above (None for others)."""
    import errno

    name = errno.errorcode.get(e.errno or 0, "")
    if name not in _OS_HINTS:
        return None
    where = e.filename if e.filename is not None else "a file"
    return f"{where}: {e.strerror or name}; {_OS_HINTS[name]}"


def is_disk_full(e: BaseException) -> bool:
    import errno

    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
