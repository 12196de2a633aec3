"""goodhart: stress-test KL regularization, and read any RLHF run for catastrophic Goodhart.

The public API. Every name here is stable; import it from here: the modules behind it
(``goodhart.pipeline``, ``goodhart.eval``, ``goodhart.rewards``, and the underscore modules of this
package) may change between releases. A public name is its defining module's own object, documented
once where it is defined (optax style): ``goodhart.Alarm`` *is* ``goodhart.eval.alarm.Alarm``, so
what the pipeline builds is what a user gets.

    ```pycon
    >>> import goodhart
    >>> goodhart.__version__ == __import__("importlib.metadata").metadata.version("goodhart")
    True
    >>> "label_points" in goodhart.__all__ and "alarm" in goodhart.__all__
    True
    >>> import goodhart.eval.alarm
    >>> goodhart.Alarm is goodhart.eval.alarm.Alarm and goodhart.AlarmRule is goodhart.eval.alarm.AlarmRule
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

# public name -> (the module that defines it, its name there), loaded on first access. The public
# name *is* the defining module's object (documented once, where it is defined): goodhart.Alarm is
# goodhart.eval.alarm.Alarm.
_WHERE: dict[str, tuple[str, str]] = {
    # verdicts with gold (eval/goodhart.py) and finished sweeps
    "label_points": ("goodhart.eval.goodhart", "label_points"),
    "VerdictRule": ("goodhart.eval.goodhart", "VerdictRule"),
    "load_results": ("goodhart.pipeline.sweeps.record", "load_results"),
    "report": ("goodhart.pipeline.report.verdicts", "build_report"),
    # the gold-free alarm (eval/alarm.py)
    "alarm": ("goodhart.eval.alarm", "alarm"),
    "tilt_alarm": ("goodhart.eval.alarm", "tilt_alarm"),
    "bon_alarm": ("goodhart.eval.alarm", "bon_alarm"),
    "BaseStats": ("goodhart.eval.alarm", "BaseStats"),
    "AlarmRule": ("goodhart.eval.alarm", "AlarmRule"),
    "Alarm": ("goodhart.eval.alarm", "Alarm"),
    # tail diagnostics (eval/tails.py) and the reward-model probe (pipeline/probe)
    "tails": ("goodhart._tails", "tails"),
    "probe": ("goodhart._probe", "probe"),
    # any run's per-sample file (`goodhart analyze`)
    "read_samples": ("goodhart._samples", "read_samples"),
    "analyze": ("goodhart._samples", "analyze"),
    "samples_from_sweep": ("goodhart._samples", "samples_from_sweep"),
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
    from goodhart._probe import probe
    from goodhart._samples import analyze, read_samples, samples_from_sweep
    from goodhart._tails import tails
    from goodhart.eval.alarm import Alarm, AlarmRule, BaseStats, alarm, bon_alarm, tilt_alarm
    from goodhart.eval.goodhart import VerdictRule, label_points
    from goodhart.pipeline.report.verdicts import build_report as report
    from goodhart.pipeline.sweeps.record import load_results


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'goodhart' has no attribute {name!r}")
    module, attr = where
    value = getattr(import_module(module), attr)
    globals()[name] = value  # next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
