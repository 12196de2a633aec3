"""The reward-model tail probe (pipeline/probe/, `goodhart probe`): the public wrapper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from goodhart.pipeline.probe.run import ProbeResult


def probe(
    config: str | Path | None,
    mode: str = "random",
    overrides: Sequence[str] = (),
    probe_overrides: Sequence[str] = (),
    progress: bool = False,
) -> ProbeResult:
    """How far a reward's tail reaches: ``mode`` ``random`` (uniform random token sequences),
    ``base`` (base-model completions) or ``optimize`` (coordinate-gradient search over input tokens,
    differentiable HF rewards only). ``config``: a run config naming the reward and the base model
    (None: the built-in defaults); ``overrides``: its dotted ``key=value`` overrides;
    ``probe_overrides``: the probe config's (configs/probe/default.yaml, e.g. ``n_samples=500``).
    Returns the result: ``.summary`` (``["tails"]["verdict"]``, the distribution), ``.text``, ``.dir``, ``.files``.

    ```pycon
    >>> from goodhart import probe
    >>> res = probe(None, "random", ["reward.type=plugin", "reward.name=word_count", "utility=same"],
    ...             ["n_samples=500", "length=8"])  # doctest: +SKIP
    >>> res.summary["tails"]["verdict"] in ("light", "heavy", "inconclusive", "not run")  # doctest: +SKIP
    True

    ```

    (Skipped in the doctest run: it needs the built-in model; tests/test_api.py runs it on the small one.)
    """
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.probe.config import load_probe_config
    from goodhart.pipeline.probe.engine import run_probe

    cfg = load_config(str(config) if config is not None else None, list(overrides))
    pcfg = load_probe_config(None, list(probe_overrides))
    return run_probe(mode, cfg, pcfg, progress=progress)
