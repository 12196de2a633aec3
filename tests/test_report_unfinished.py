"""`goodhart report` of an unfinished sweep says which points are missing and that its verdict
covers the finished points only: printed, in report.md and in report.html. A complete sweep
says nothing of the kind."""

from __future__ import annotations

import yaml

from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.io import read_json

SET = {
    "reward": "distributional",
    "sampling.n": 512,
    "prompts.n_eval": 6,
    "eval.bootstrap": 30,
    "tracking.enabled": False,
}


def _sweep(tmp):
    spec = {
        "name": "u",
        "base": str(configs_dir() / "base.yaml"),
        "set": SET,
        "branches": [
            {"set": {"algo": "tilt"}, "grid": {"algo.kl.coef": [3.0, 1.0, 0.3]}},
            {"set": {"algo": "bon"}, "grid": {"algo.n": [1, 4, 16]}},
        ],
    }
    (tmp / "u.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(tmp / "u.yaml"), "--quiet"]) == 0
    return tmp / "runs" / "u"


def test_report_of_an_unfinished_sweep_names_the_missing_points(in_tmp, capsys):
    root = _sweep(in_tmp)
    entries = read_json(root / "points.json")
    gone = [e for e in entries if e["overrides"].get("algo.n") == 16 or e["overrides"].get("algo.kl.coef") == 0.3]
    assert len(gone) == 2
    for e in gone:
        (root / "points" / e["id"] / "result.json").unlink()
    capsys.readouterr()
    assert main(["report", str(root), "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    head = "unfinished sweep: the verdict covers the 4 finished point(s) of 6 only; 2 not finished"
    assert head in out
    for e in gone:
        assert f"#{e['index']} {e['id']} (pending)" in out
    assert out.index(head) < out.index("sweep verdict:")
    md = (root / "report" / "report.md").read_text()
    assert head in md.splitlines()[2] and all(e["id"] in md for e in gone)
    page = (root / "report" / "report.html").read_text()
    assert head in page and all(e["id"] in page for e in gone)


def test_report_of_a_complete_sweep_says_nothing_is_missing(in_tmp, capsys):
    root = _sweep(in_tmp)
    capsys.readouterr()
    assert main(["report", str(root), "--no-mlflow"]) == 0
    assert "unfinished" not in capsys.readouterr().out
    assert "unfinished" not in (root / "report" / "report.md").read_text()
    assert "unfinished" not in (root / "report" / "report.html").read_text()
