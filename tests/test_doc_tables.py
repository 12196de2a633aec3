"""Results tables in the docs are drawn from stored runs (docs/tables.py): every marked block is
what the current code draws from its stored run, the run is what its command runs now, and its
numbers were computed under the current rules; a stale block fails here, without re-running a
sweep. Tables printed by the CLI outside markers are only the ones listed below (from runs made
before the markers); editing one, or adding another, fails until it is drawn from a stored run."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tables():
    spec = importlib.util.spec_from_file_location("doc_tables", REPO / "docs" / "tables.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["doc_tables"] = mod  # its dataclass looks its module up
    spec.loader.exec_module(mod)
    return mod


T = _tables()

# CLI tables (a ```text block with a dashed rule) outside results markers, by page and digest of
# the block: runs made before the markers existed, whose results were not stored. Redraw one by
# storing its sweep's next run (`python docs/tables.py snapshot ...`) and marking it; then drop it here.
LEGACY = {
    ("docs/results.md", "b638afab06ab"),  # rl_goodhart's verdicts (goodhart report)
    ("docs/results.md", "f763cd9899cd"),  # the reward-model tail probe (goodhart probe)
}


def test_every_results_block_is_fresh():
    assert T.blocks(), "no results block in the docs"
    assert T.check() == []


def test_cli_tables_outside_markers_are_only_the_known_ones():
    found = set()
    for page in T.pages():
        text = T.BLOCK.sub("", page.read_text())
        for m in re.finditer(r"```text\n(.*?)```", text, re.S):
            if re.search(r"^-{20,}$", m.group(1), re.M):
                found.add((str(page.relative_to(REPO)), hashlib.sha1(m.group(1).encode()).hexdigest()[:12]))
    new = sorted(found - LEGACY)
    assert not new, (
        f"results tables pasted by hand (page, digest): {new}; draw them from a stored run: "
        "`python docs/tables.py snapshot SWEEP_DIR SWEEP_FILE` and a <!-- results: RUN --> block"
    )
    assert not LEGACY - found, f"listed tables no longer in the docs (drop them from LEGACY): {sorted(LEGACY - found)}"


@pytest.fixture()
def repo(tmp_path) -> Path:
    """A copy of what one block needs: its stored run, its sweep file and a page that shows it."""
    shutil.copytree(REPO / "docs" / "runs" / "smollm2_smoke", tmp_path / "docs" / "runs" / "smollm2_smoke")
    (tmp_path / "configs" / "sweep").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "sweep" / "smollm2_smoke.yaml", tmp_path / "configs" / "sweep")
    (tmp_path / "docs" / "page.md").write_text("Intro.\n\n<!-- results: smollm2_smoke -->\n<!-- /results -->\n\nEnd.\n")
    T.write(tmp_path / "docs" / "runs", tmp_path)
    return tmp_path


def _check(repo: Path) -> list[str]:
    return T.check(repo / "docs" / "runs", repo)


def test_a_drawn_block_is_fresh_and_a_hand_edit_is_stale(repo):
    page = repo / "docs" / "page.md"
    assert "0.551 [0.467, 0.635]" in page.read_text() and _check(repo) == []
    page.write_text(page.read_text().replace("0.551 [0.467, 0.635]", "0.551 [0.500, 0.600]"))
    (problem,) = _check(repo)
    assert "docs/page.md: results block 'smollm2_smoke' is not what docs/runs/smollm2_smoke/ draws now" in problem
    assert T.write(repo / "docs" / "runs", repo) == [page]  # redrawn
    assert _check(repo) == []


def test_a_change_of_the_table_code_makes_the_block_stale(repo, monkeypatch):
    import goodhart.pipeline.sweeps.tables as tables

    drawn = tables.sweep_tables
    monkeypatch.setattr(tables, "sweep_tables", lambda df: drawn(df).replace("95% CI", "90% CI"))
    (problem,) = _check(repo)
    assert "is not what" in problem


def test_a_run_its_command_no_longer_makes_is_stale(repo):
    f = repo / "configs" / "sweep" / "smollm2_smoke.yaml"
    f.write_text(f.read_text().replace("algo.n: [1, 4, 16]", "algo.n: [1, 4, 8]"))
    (problem,) = _check(repo)
    assert "`goodhart sweep configs/sweep/smollm2_smoke.yaml` now runs other points (1 new ids)" in problem


def test_numbers_from_an_older_alarm_rule_are_stale(repo, monkeypatch):
    import goodhart.eval.alarm as alarm

    monkeypatch.setattr(alarm, "VERSION", alarm.VERSION + 1)
    (problem,) = _check(repo)
    assert "its alarm column is stale (" in problem and f"{alarm.VERSION}" in problem


def test_markers_name_a_stored_run_and_known_options(repo):
    page = repo / "docs" / "page.md"
    page.write_text("<!-- results: nosuchrun -->\n<!-- /results -->\n")
    (problem,) = _check(repo)
    assert "nosuchrun" in problem and "no stored run" in problem
    with pytest.raises(ValueError, match="unknown option 'curves=x'"):
        T.parse_spec("smollm2_smoke curves=x")
    page.write_text('<!-- results: smollm2_smoke curve="gaussian x0.5" -->\n<!-- /results -->\n')
    assert "no curve title contains 'gaussian x0.5'" in _check(repo)[0]
    page.write_text('<!-- results: smollm2_smoke curve="student_t(df=2)" -->\n<!-- /results -->\n')
    T.write(repo / "docs" / "runs", repo)
    assert "student_t(df=2) x0.3" in page.read_text() and _check(repo) == []


# ---------------------------------------------------------------------------------------------
# A run stored with its report (docs/study.py): part=report and part=power
# ---------------------------------------------------------------------------------------------
REPORT_MD = """# Sweep `s`: verdict **unresolved**

## Held-out estimate (no gold)

- estimate c1 bon: peak at n=4
## Verdicts

- c1 (bon) utility sentiment | proxy x: utility peaked at KL 0.6

### The rule

```
rule text
```
"""


def _row(x, verdict, need=float("nan"), units=float("nan"), open_=False):
    return {
        "curve": "c1", "algo": "bon", "x_name": "n", "x": x, "kl": float(x), "verdict": verdict, "n/prompts": 32,
        "mdd": 0.1, "need": need, "need/units": units, "open": open_,
    }  # fmt: skip


def test_a_run_stored_with_its_report_draws_its_verdicts_and_power(repo):
    import pandas as pd

    d = repo / "docs" / "runs" / "smollm2_smoke"
    (d / "report.md").write_text(REPORT_MD)
    rows = [_row(4, "improving"), _row(64, "unresolved", 3.125, 100), _row(128, "unresolved", float("inf"))]
    pd.DataFrame(rows).to_csv(d / "verdicts.csv", index=False)
    page = repo / "docs" / "page.md"
    page.write_text(
        "<!-- results: smollm2_smoke part=report -->\n<!-- /results -->\n"
        "<!-- results: smollm2_smoke part=power -->\n<!-- /results -->\n"
    )
    T.write(repo / "docs" / "runs", repo)
    text = page.read_text()
    assert "#### Held-out estimate (no gold)" in text and "#### Verdicts" in text and "- c1 (bon)" in text
    assert "rule text" not in text  # the rule is docs/verdicts.md's
    # the rule's own power columns (eval.goodhart.power_table), the improving point left out
    lines = [x.split() for x in text.splitlines() if x.lstrip().startswith("c1")]
    assert (
        [x[2] for x in lines] == ["n=64", "n=128"] and lines[0][-2:] == ["x3.12", "100"] and lines[1][-2:] == ["-", "-"]
    )
    assert "2 of 3 points unresolved, on 32 prompts." in text
    assert _check(repo) == []
    (d / "verdicts.csv").write_text((d / "verdicts.csv").read_text().replace(",100", ",200"))
    assert "is not what" in _check(repo)[0]  # the stored verdicts moved: the block is stale
    (d / "study.json").write_text(
        '[{"steps": [{"step": "sweep", "rc": 130, "wall_s": 61.0, "cpu_s": 30.0, "load": [2.0, 3.5]}]},'
        ' {"steps": [{"step": "sweep", "rc": 0, "wall_s": 120.0, "cpu_s": 100.0, "load": [1.0]}]}]'
    )
    page.write_text("<!-- results: smollm2_smoke part=cost -->\n<!-- /results -->\n")
    T.write(repo / "docs" / "runs", repo)
    rows = [x.split() for x in page.read_text().splitlines() if x.strip().startswith(("1 ", "2 ", "all"))]
    assert rows == [
        ["1", "sweep", "1m", "01s", "30", "2.0-3.5", "130"],
        ["2", "sweep", "2m", "00s", "100", "1.0-1.0", "0"],
        ["all", "3m", "01s", "130"],
    ]
    with pytest.raises(ValueError, match="part='plots'"):
        T.parse_spec("smollm2_smoke part=plots")


# ---------------------------------------------------------------------------------------------
# An arena run, stored by its report's cell tables (snapshot --arena): part=arena
# ---------------------------------------------------------------------------------------------
def test_an_arena_run_draws_its_matrix_and_keeps_its_alarm_check(tmp_path, monkeypatch):
    import goodhart.eval.alarm as alarm

    shutil.copytree(REPO / "docs" / "runs" / "arena", tmp_path / "docs" / "runs" / "arena")
    shutil.copytree(REPO / "configs", tmp_path / "configs")  # arena.yaml reads base.yaml and the reward configs
    page = tmp_path / "docs" / "page.md"
    with pytest.raises(FileNotFoundError, match="stored without its results.csv: use part=arena"):
        T.draw("arena", {}, tmp_path / "docs" / "runs")
    page.write_text("<!-- results: arena part=arena -->\n<!-- /results -->\n")
    T.write(tmp_path / "docs" / "runs", tmp_path)
    text = page.read_text()
    # 'n/a' (no prediction) read back as a string, not as pandas' missing value
    assert "Across 152 (law, column) pairs" in text and "16 have none." in text
    assert "ens_min    impr5 impr5" in text and "ens_median(rho=0.5)" in text
    # (the point-id check expands the arena's 8,160 points, ~10 s: test_every_results_block_is_fresh does it)
    monkeypatch.setattr(T, "expected_ids", lambda meta, repo: meta["point_ids"])
    monkeypatch.setattr(alarm, "VERSION", alarm.VERSION + 1)  # the results' recorded rule is now old
    (problem,) = _check(tmp_path)
    assert "its alarm column is stale (its alarm was computed under alarm rule" in problem
