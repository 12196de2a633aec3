"""goodhart: stress-test KL regularization, and read any RLHF run for catastrophic Goodhart.

The public API. Every name here is stable; everything else (``goodhart.pipeline``, ``goodhart.eval``,
``goodhart.rewards``, and the underscore modules of this package) may change between releases.

    ```pycon
    >>> import goodhart
    >>> goodhart.__version__ == __import__("importlib.metadata").metadata.version("goodhart")
    True
    >>> "label_points" in goodhart.__all__ and "alarm" in goodhart.__all__
    True

    ```

Importing ``goodhart`` is cheap: the names load their modules on first use (no torch, no pandas
at ``import goodhart``). ``goodhart.integrations.trl`` holds the TRL callback (docs/integrations.md).
Source: this package lives in ``pipeline/api/`` of the repository (pyproject.toml maps it to the top).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import TYPE_CHECKING, Any

try:
    __version__: str = _dist_version("goodhart")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

# public name -> the private module that defines it (loaded on first access)
_WHERE: dict[str, str] = {
    # verdicts with gold (eval/goodhart.py) and finished sweeps
    "label_points": "goodhart._verdicts",
    "VerdictRule": "goodhart._verdicts",
    "load_results": "goodhart._verdicts",
    "report": "goodhart._verdicts",
    # the gold-free alarm (eval/alarm.py)
    "alarm": "goodhart._alarm",
    "tilt_alarm": "goodhart._alarm",
    "bon_alarm": "goodhart._alarm",
    "BaseStats": "goodhart._alarm",
    "AlarmRule": "goodhart._alarm",
    "Alarm": "goodhart._alarm",
    # tail diagnostics (eval/tails.py) and the reward-model probe (pipeline/probe)
    "tails": "goodhart._tails",
    "probe": "goodhart._probe",
    # any run's per-sample file (`goodhart analyze`)
    "read_samples": "goodhart._samples",
    "analyze": "goodhart._samples",
    "samples_from_sweep": "goodhart._samples",
}

__all__ = [  # the same names as _WHERE (tests/test_api.py checks), spelled out for readers and linters
    "__version__",
    "label_points",
    "VerdictRule",
    "load_results",
    "report",
    "alarm",
    "tilt_alarm",
    "bon_alarm",
    "BaseStats",
    "AlarmRule",
    "Alarm",
    "tails",
    "probe",
    "read_samples",
    "analyze",
    "samples_from_sweep",
]

if TYPE_CHECKING:  # for type checkers and mkdocstrings: the names as if imported eagerly
    from goodhart._alarm import Alarm, AlarmRule, BaseStats, alarm, bon_alarm, tilt_alarm
    from goodhart._probe import probe
    from goodhart._samples import analyze, read_samples, samples_from_sweep
    from goodhart._tails import tails
    from goodhart._verdicts import VerdictRule, label_points, load_results, report


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'goodhart' has no attribute {name!r}")
    value = getattr(import_module(where), name)
    globals()[name] = value  # next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
