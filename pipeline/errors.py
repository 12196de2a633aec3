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
