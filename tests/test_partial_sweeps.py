"""Part of a sweep: --only KEY=VALUE on the resolved config, --branch NAME_OR_INDEX, and CLI
overrides that apply where the key exists (with a notice where it does not)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.errors import ConfigError
from goodhart.pipeline.sweeps.spec import expand, expand_selected, load_sweep

DEMO = configs_dir() / "sweep" / "demo.yaml"


def test_override_applies_only_where_the_key_exists():
    sweep, base = load_sweep(DEMO)
    full = expand(sweep, base)
    sel = expand_selected(sweep, base, ["algo.steps=10"])
    assert len(sel.points) == len(full) == sel.total and not sel.partial
    ppo = [p for p in sel.points if p.cfg.algo.kind == "ppo"]
    assert len(ppo) == 6 and all(p.cfg.algo.steps == 10 for p in ppo)
    assert all("algo.steps" not in p.overrides for p in sel.points if p.cfg.algo.kind != "ppo")
    [note] = sel.notices
    assert note.startswith("algo.steps=10 not applied to 60 point(s) without that key")
    # the points without the key are the very points of the plain sweep
    same = {p.id for p in full if p.cfg.algo.kind != "ppo"}
    assert same == {p.id for p in sel.points if p.cfg.algo.kind != "ppo"}


def test_an_override_no_point_has_is_still_an_error():
    sweep, base = load_sweep(DEMO)
    with pytest.raises(ConfigError, match="algo.stepz"):
        expand_selected(sweep, base, ["algo.stepz=10"])


def test_only_and_branch_select_points():
    sweep, base = load_sweep(DEMO)
    bon = expand_selected(sweep, base, only=["algo=bon"])
    # the text branch's 27 best-of-n points and the synthetic branch's 12
    assert len(bon.points) == 27 + 12 and bon.partial and {p.cfg.algo.kind for p in bon.points} == {"bon"}
    assert [p.index for p in bon.points] == list(range(39))  # SLURM array indices stay 0..k-1
    assert len(expand_selected(sweep, base, only=["algo=bon", "algo.n=64"]).points) == 3 + 2
    assert len(expand_selected(sweep, base, only=["reward=pareto", "algo=tilt"]).points) == 7
    assert len(expand_selected(sweep, base, only=["reward.error.law.name=pareto"]).points) == 7 + 9 + 3
    by_name = expand_selected(sweep, base, branches=["ppo"])
    by_index = expand_selected(sweep, base, branches=["2"])
    assert [p.id for p in by_name.points] == [p.id for p in by_index.points] and len(by_name.points) == 6
    assert len(expand_selected(sweep, base, branches=["tilt", "bon"]).points) == 21 + 27
    with pytest.raises(ConfigError, match="no branch 'rloo'; its branches: 0=tilt, 1=bon, 2=ppo, 3=synthetic"):
        expand_selected(sweep, base, branches=["rloo"])
    with pytest.raises(ConfigError, match="no point of sweep 'demo' matches algo=grpo"):
        expand_selected(sweep, base, only=["algo=grpo"])


def test_partial_run_keeps_the_rest_of_the_study(in_tmp, capsys):
    spec = {
        "name": "part",
        "base": str(configs_dir() / "base.yaml"),
        "set": {"reward": "distributional", "sampling.n": 256, "prompts.n_eval": 4, "eval.bootstrap": 20},
        "branches": [
            {"set": {"algo": "tilt"}, "grid": {"algo.kl.coef": [1.0, 0.5]}},
            {"name": "best", "set": {"algo": "bon"}, "grid": {"algo.n": [1, 4]}},
        ],
    }
    (in_tmp / "part.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "part.yaml", "--branch", "best", "--quiet", "tracking.enabled=false"]) == 0
    err = capsys.readouterr().err
    assert "running 2 of the sweep's 4 points" in err
    df = pd.read_csv(in_tmp / "runs" / "part" / "results.csv")
    assert sorted(df["algo"]) == ["bon", "bon"]
    assert main(["sweep", "part.yaml", "--only", "algo=tilt", "--quiet", "tracking.enabled=false"]) == 0
    capsys.readouterr()
    df = pd.read_csv(in_tmp / "runs" / "part" / "results.csv")
    assert sorted(df["algo"]) == ["bon", "bon", "tilt", "tilt"] and set(df["status"]) == {"done"}
    assert sorted(df["index"]) == [0, 1, 2, 3]
