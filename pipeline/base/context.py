"""What an optimizer gets: the resolved config, its point directory, lazy access to prompts
and the base pool, the alarm's rule (built once per run from the config's `alarm:` keys), and a
logger for per-step metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from goodhart.pipeline.config.schema import RunConfig

if TYPE_CHECKING:  # (the pool's code imports the rewards and scipy.stats: loaded when a pool is built)
    from goodhart.eval.alarm import AlarmRule
    from goodhart.pipeline.base.holdout import Holdout
    from goodhart.pipeline.base.measure import StepLogger
    from goodhart.pipeline.base.pool import Pool


def _no_log(metrics: dict[str, float], step: int) -> None:
    pass


@dataclass
class PointContext:
    cfg: RunConfig
    point_dir: Path
    progress: bool = True
    log_metrics: StepLogger = _no_log
    _prompts: tuple[list[str], list[str]] | None = field(default=None, repr=False)
    _pool: Pool | None = field(default=None, repr=False)
    _holdout: Holdout | None = field(default=None, repr=False)

    def prompts(self) -> tuple[list[str], list[str]]:
        """(train, eval) prompts."""
        if self._prompts is None:
            from goodhart.pipeline.base.models import format_prompts
            from goodhart.pipeline.base.prompts import load_prompts

            g = self.cfg.sampling.grown_from
            train, ev = load_prompts(self.cfg.prompts, g.n_eval if g is not None else None)
            self._prompts = format_prompts(self.cfg.model, train), format_prompts(self.cfg.model, ev)
        return self._prompts

    @cached_property
    def alarm_rule(self) -> AlarmRule:
        """The run's goodhart.eval.alarm.AlarmRule, from `alarm.*` (built once; every alarm of the
        run -- the point's row, the online checks, the trained policy's final row -- reads it)."""
        return self.cfg.alarm.rule()

    def pool(self) -> Pool:
        """The base pool on the eval prompts (sampled once per sweep, then cached)."""
        if self._pool is None:
            from goodhart.pipeline.base.pool import base_pool

            train, ev = (None, None) if self.cfg.distributional else self.prompts()
            self._pool = base_pool(self.cfg, ev, train, self.progress)
        return self._pool

    def holdout(self) -> Holdout | None:
        """The held-out proxy on the base pool (eval.holdout; None without one), made once."""
        if self._holdout is None and self.cfg.eval.holdout is not None:
            from goodhart.pipeline.base.holdout import pool_holdout

            self._holdout = pool_holdout(self.cfg, self.pool())
        return self._holdout
