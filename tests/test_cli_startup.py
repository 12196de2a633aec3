"""Verbs that need no model do not import one: `config show` (also with a bad key), `status`, a
YAML error, `--help`, `sweep --dry-run` and `report` of a distributional sweep never load torch
or transformers (5-6 s of CPU before a single line); the verbs that answer at once (`--help`,
`config show`, `status`, `sweep --dry-run`, `tails` of a .npy file) load none of the statistics
and tables they do not use either (scipy.stats alone is ~0.8 s of CPU; mlflow, pandas,
matplotlib). Checked on sys.modules in a fresh process, never by timing; the figures are in
benchmarks/bench_cli_startup.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "trl", "accelerate", "peft", "deepspeed")
# ...and what a verb that answers at once does not need (each 0.3-0.8 s of CPU to import)
SLOW = ("scipy.stats", "scipy.optimize", "scipy.special", "mlflow", "pandas", "matplotlib", "pyarrow", "sklearn")
WATCHED = HEAVY + SLOW
# Runs the CLI in this process, then prints which heavy modules it imported (after any exit).
WRAPPER = """
import json, sys
from goodhart.pipeline.cli.main import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
print("HEAVY=" + json.dumps([m for m in %r if m in sys.modules]), file=sys.stderr)
sys.exit(rc or 0)
""" % (WATCHED,)


def imports(args: list[str], cwd: Path, **env_vars: str) -> tuple[list[str], subprocess.CompletedProcess]:
    """(the WATCHED modules the CLI imported, the process) for `goodhart ARGS` in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env_vars}
    r = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line, r.stderr[-2000:]
    return json.loads(line[-1][len("HEAVY=") :]), r


def heavy_imports(args: list[str], cwd: Path) -> tuple[list[str], subprocess.CompletedProcess]:
    """(the HEAVY modules -- a model's libraries -- the CLI imported, the process)."""
    got, r = imports(args, cwd)
    return [m for m in got if m in HEAVY], r


SWEEP = """name: light
base: {base}
set: {{reward: distributional, sampling.n: 256, prompts.n_eval: 4, tracking.enabled: false, eval.bootstrap: 20}}
branches:
  - set: {{algo: bon}}
    grid: {{algo.n: [1, 4]}}
"""


@pytest.fixture(scope="module")
def light_sweep(tmp_path_factory) -> Path:
    from goodhart.pipeline.config.load import configs_dir

    d = tmp_path_factory.mktemp("light")
    (d / "light.yaml").write_text(SWEEP.format(base=configs_dir() / "base.yaml"))
    heavy, r = heavy_imports(["sweep", "light.yaml", "--quiet"], d)
    assert r.returncode == 0, r.stderr[-2000:]
    assert heavy == []  # a distributional sweep runs without a language model, so without torch
    return d


def test_config_show_with_a_bad_key_is_refused_before_heavy_imports(tmp_path):
    heavy, r = heavy_imports(["config", "show", "nosuch.key=1"], tmp_path)
    assert r.returncode == 2 and "unknown key 'nosuch'" in r.stderr
    assert heavy == []


def test_a_yaml_error_is_refused_before_heavy_imports(tmp_path):
    (tmp_path / "bad.yaml").write_text("a: [\n")
    for verb in ("run", "sweep"):
        heavy, r = heavy_imports([verb, "bad.yaml"], tmp_path)
        assert r.returncode == 2 and "bad.yaml" in r.stderr, r.stderr[-500:]
        assert heavy == [], verb


def test_help_and_config_show_do_not_import_torch(tmp_path):
    for args in (["--help"], ["sweep", "--help"], ["config", "show"]):
        heavy, r = heavy_imports(args, tmp_path)
        assert r.returncode == 0 and heavy == [], args


def test_status_dry_run_and_report_of_a_sweep_do_not_import_torch(light_sweep):
    heavy, r = heavy_imports(["status", "runs/light"], light_sweep)
    assert r.returncode == 0 and "done: 2" in r.stdout and heavy == []
    heavy, r = heavy_imports(["sweep", "light.yaml", "--dry-run"], light_sweep)
    assert r.returncode == 0 and "2 point(s)" in r.stdout and heavy == []
    heavy, r = heavy_imports(["report", "runs/light", "--no-mlflow"], light_sweep)
    assert r.returncode == 0, r.stderr[-2000:]
    assert heavy == []


def test_verbs_that_answer_at_once_import_no_statistics_or_tables(light_sweep):
    """`--help`, `config show`, `status`, `sweep --dry-run`: none of scipy.stats, mlflow, pandas,
    matplotlib (`goodhart --help` paid 0.8 s of CPU for scipy.stats, imported by eval/alarm.py to
    print two flag defaults). `tails` of a .npy file: the test below."""
    for args in (["--help"], ["config", "show"], ["status", "runs/light"], ["sweep", "light.yaml", "--dry-run"]):
        got, r = imports(args, light_sweep)
        assert r.returncode == 0 and got == [], (args, got)
    got, r = imports(["alarm-eval", "--help"], light_sweep)
    assert r.returncode == 0 and "(default 0.05)" in r.stdout and "(default 0.8," in r.stdout


def test_the_train_package_still_exports_its_names():
    import goodhart.pipeline.train as T

    for name in T.__all__:
        assert getattr(T, name) is not None
    with pytest.raises(AttributeError):
        T.no_such_name  # noqa: B018


def test_tails_of_a_small_file_imports_no_scipy_once_its_size_was_seen(tmp_path):
    """`goodhart tails FILE` of a .npy file: no pandas (the table readers are for .csv and .parquet),
    no scipy.stats (1.4 s of CPU; with it the verb took 3.0 s): its normal quantiles are a table, and
    its Student-t reference, which depends on the sample's size only, is kept in
    $GOODHART_CACHE/stats/ (eval/tails.py tail_verdict's memo). The first file of a size simulates
    it with scipy.special; the next reads it from disk and imports no scipy module at all (0.8 s
    of CPU in all). The table read back is the one computed, byte for byte."""
    import numpy as np

    np.save(tmp_path / "a.npy", np.random.default_rng(0).standard_t(3, 2000))
    cache = str(tmp_path / "cache")
    got, first = imports(["tails", "a.npy"], tmp_path, GOODHART_CACHE=cache)
    assert first.returncode == 0 and "a.npy: 2000 samples" in first.stdout, first.stderr[-2000:]
    assert got == ["scipy.special"], got
    got, again = imports(["tails", "a.npy"], tmp_path, GOODHART_CACHE=cache)
    assert again.returncode == 0 and again.stdout == first.stdout
    assert got == [], got
