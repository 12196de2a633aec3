"""The public API (pipeline/api/ installed as `goodhart`): every name docs/api.md lists is
importable from `goodhart`, has a docstring with an example, and that example runs; importing
`goodhart` stays cheap; the version is the package's."""

from __future__ import annotations

import doctest
import importlib
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import goodhart

REPO = Path(__file__).resolve().parents[1]
LISTED = re.findall(r"^::: (goodhart\.[\w.]+)\s*$", (REPO / "docs" / "api.md").read_text(), re.M)


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for p in parts[i:]:
            obj = getattr(obj, p)
        return obj
    raise ImportError(dotted)


def test_the_docs_list_every_public_name_and_nothing_else():
    top = {n.split(".", 1)[1] for n in LISTED if n.count(".") == 1}
    assert top == set(goodhart.__all__) - {"__version__"}
    assert set(goodhart.__all__) - {"__version__"} == set(goodhart._WHERE)  # the lazy table and __all__ agree


@pytest.mark.parametrize("name", LISTED)
def test_every_listed_name_is_importable_documented_and_its_example_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    obj = _resolve(name)
    if name.count(".") == 1:
        assert getattr(goodhart, name.split(".")[1]) is obj  # from goodhart import <name>
    doc = obj.__doc__ or ""
    assert ">>>" in doc, f"{name}: no example in its docstring"
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.attempted > 0 and res.failed == 0, f"{name}: {res.failed} of {res.attempted} example lines failed"


def test_public_names_are_the_defining_modules_own_objects():
    """optax style: `goodhart.X` *is* the object of the module that defines it (documented there,
    once), never a subclass that re-documents it: what the pipeline builds is a goodhart.Alarm."""
    import numpy as np

    import goodhart.eval.alarm as A
    import goodhart.eval.goodhart as G
    from goodhart.pipeline.report.verdicts import build_report
    from goodhart.pipeline.sweeps.record import load_results

    for name in ("Alarm", "AlarmRule", "BaseStats", "alarm", "tilt_alarm", "bon_alarm"):
        assert getattr(goodhart, name) is getattr(A, name), name
    assert goodhart.VerdictRule is G.VerdictRule and goodhart.label_points is G.label_points
    assert goodhart.load_results is load_results and goodhart.report is build_report
    pool = np.random.default_rng(0).normal(size=(4, 256))
    assert type(A.bon_alarm(pool, 4, 0.6)) is goodhart.Alarm
    # every field is documented where it is defined (the reading's 4 that decide its level included)
    import ast
    import inspect
    from dataclasses import fields

    for cls in (A.Alarm, A.AlarmRule, A.BaseStats):
        tree = ast.parse(inspect.getsource(cls))
        body = tree.body[0].body
        documented = {
            a.target.id
            for a, nxt in zip(body, body[1:])
            if isinstance(a, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
        }
        assert documented == {f.name for f in fields(cls)}, cls.__name__


def test_the_package_docstring_example_runs():
    res = doctest.testmod(goodhart, optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0


def test_import_goodhart_is_cheap():
    code = "import sys, goodhart; goodhart.__version__; print(sorted(m for m in ('torch', 'pandas', 'transformers', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_version_is_the_package_metadata_and_the_cli_prints_it(capsys):
    from goodhart.pipeline.cli.main import main

    assert goodhart.__version__ == version("goodhart")
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"goodhart {version('goodhart')}"


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        goodhart.nope  # noqa: B018


def test_probe_runs_on_the_small_model(small_model_dir, tmp_path, monkeypatch):
    """probe's docstring example skips the call (it needs a model); here it runs on the small one."""
    monkeypatch.chdir(tmp_path)
    res = goodhart.probe(
        None,
        "random",
        [
            "model.name=path",
            f"model.path={small_model_dir}",
            "reward.type=plugin",
            "reward.name=word_count",
            "utility=same",
            f"output_dir={tmp_path}",
        ],
        ["n_samples=500", "length=8"],
    )
    assert res.mode == "random" and res.summary["distribution"]["n"] == 500
    assert res.summary["tails"]["verdict"] in ("light", "heavy", "inconclusive", "not run")
