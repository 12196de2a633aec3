"""Any run's per-sample file (`goodhart analyze`): the public wrappers. The schema is documented
in docs/integrations.md (and pipeline/report/samples.py, which reads it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from goodhart.eval.alarm import AlarmRule
    from goodhart.eval.goodhart import VerdictRule
    from goodhart.pipeline.report.analyze import AnalyzeResult


def read_samples(path: str | Path, base_id: str = "base") -> pd.DataFrame:
    """Read and check a per-sample file (.csv, .parquet, .jsonl): one row per sample with
    ``point``, ``prompt``, ``proxy``, optional ``utility``, a ``kl`` (or ``logp`` and
    ``logp_base``), optional ``weight``, and rows of the base policy (``point`` = ``base_id``).
    A bad file raises an error naming its row and column.

    ```pycon
    >>> from pathlib import Path
    >>> import goodhart
    >>> example = Path(goodhart.__file__).parents[2] / "examples" / "samples" / "tiny_run.csv"
    >>> df = goodhart.read_samples(example)
    >>> sorted(df["point"].unique())[:3]
    ['0', '100', '200']

    ```
    """
    from goodhart.pipeline.report.samples import read_samples as _read

    return _read(path, base_id)


def analyze(
    samples: str | Path | pd.DataFrame,
    out_dir: str | Path | None = None,
    rule: VerdictRule | None = None,
    base_id: str = "base",
    pairing: str = "prompt",
    alarm_rule: AlarmRule | None = None,
) -> AnalyzeResult:
    """`goodhart analyze SAMPLES` as a function: the same results table, verdicts, alarm, tails and
    report.html as a sweep, written to ``out_dir`` (default ``<stem>_analysis/`` beside the file).
    Returns ``.results`` (one row per point), ``.labelled`` (verdicts; None without ``utility``),
    ``.report``, ``.tails`` (base proxy per curve), ``.out_dir``. ``pairing="global"``: gains
    against the base's overall mean instead of per prompt (training logs, whose prompts are not the
    base's; e.g. the samples file of goodhart.integrations.trl.GoodhartCallback). ``alarm_rule``: the
    alarm's rule (goodhart.AlarmRule; None: the default), e.g. the callback's, to read its checks as
    it read them.

    ```pycon
    >>> import tempfile
    >>> from pathlib import Path
    >>> import goodhart
    >>> example = Path(goodhart.__file__).parents[2] / "examples" / "samples" / "tiny_run.csv"
    >>> res = goodhart.analyze(example, tempfile.mkdtemp())
    >>> res.labelled[["x", "verdict"]].values.tolist()[-1]
    [400.0, 'catastrophic']

    ```
    """
    from goodhart.eval.goodhart import VerdictRule as _Rule
    from goodhart.pipeline.report.analyze import analyze as _analyze

    return _analyze(samples, out_dir, rule if rule is not None else _Rule(), base_id, pairing, alarm_rule)


def samples_from_sweep(sweep: str | Path) -> pd.DataFrame:
    """A finished sweep's points as a per-sample table in the ``goodhart analyze`` schema (tilt and
    best-of-n as weighted base samples; trained points as their per-prompt means), with its base
    pools as the base rows. ``analyze`` of it gives the sweep's own verdicts.

    ```pycon
    >>> import contextlib, io, tempfile, yaml
    >>> from pathlib import Path
    >>> import goodhart
    >>> from goodhart.pipeline.cli.main import main
    >>> from goodhart.pipeline.config.load import configs_dir
    >>> d = Path(tempfile.mkdtemp())
    >>> spec = {"name": "s", "base": str(configs_dir() / "base.yaml"),
    ...         "set": {"reward": "distributional", "sampling.n": 512, "prompts.n_eval": 4,
    ...                 "tracking.enabled": False, "output_dir": str(d)},
    ...         "branches": [{"set": {"algo": "bon"}, "grid": {"algo.n": [1, 8]}}]}
    >>> _ = (d / "sweep.yaml").write_text(yaml.safe_dump(spec))
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     rc = main(["sweep", str(d / "sweep.yaml"), "--quiet"])
    >>> rc
    0
    >>> df = goodhart.samples_from_sweep(d / "s")
    >>> df["point"].nunique(), len(df[df["point"] == "base"])  # two points and the base; 4 x 512 base rows
    (3, 2048)

    ```
    """
    from goodhart.pipeline.report.export_samples import sweep_samples

    return sweep_samples(Path(sweep))
