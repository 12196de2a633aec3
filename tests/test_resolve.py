"""Resolve rounds (eval.resolve, pipeline/report/resolve.py): pools that grow without redrawing,
curves grown until their verdicts resolve within a budget, looks paid for by alpha spending."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from goodhart.pipeline.base.grow import block_seed, blocks, sample_ranges
from goodhart.pipeline.config.load import load_config


def _pool(*ov: str):
    from goodhart.pipeline.base.context import PointContext

    cfg = load_config(None, ["reward=distributional", "tracking.enabled=false", *ov])
    return PointContext(cfg, Path("."), False).pool()


def test_blocks_of_a_grown_pool_by_hand():
    assert sample_ranges(16, 64) == [(0, 16), (16, 32), (32, 64)]
    b = blocks(4, 16, 8, 32)
    assert [(x.p0, x.p1, x.s0, x.s1) for x in b] == [(0, 4, 0, 16), (0, 4, 16, 32), (4, 8, 0, 16), (4, 8, 16, 32)]
    assert block_seed(7, b[0]) == 7 and len({block_seed(7, x) for x in b}) == 4
    with pytest.raises(ValueError):
        sample_ranges(16, 48)


def test_a_grown_distributional_pool_keeps_every_draw():
    a = _pool("reward.error=pareto", "prompts.n_eval=4", "sampling.n=16")
    b = _pool("reward.error=pareto", "prompts.n_eval=8", "sampling.n=32", "sampling.grown_from={n_eval: 4, n: 16}")
    c = _pool("reward.error=pareto", "prompts.n_eval=16", "sampling.n=64", "sampling.grown_from={n_eval: 4, n: 16}")
    assert np.array_equal(a.proxy, b.proxy[:4, :16]) and np.array_equal(b.proxy, c.proxy[:8, :32])
    assert np.array_equal(a.utility, c.utility[:4, :16])
    assert np.unique(c.proxy).size == c.proxy.size  # the new blocks are new draws
    assert len({a.key, b.key, c.key}) == 3
    # an ensemble's members grow the same way
    e1 = _pool("reward.error=pareto", "prompts.n_eval=4", "sampling.n=16", "reward.ensemble={k: 3}")
    e2 = _pool(
        "reward.error=pareto",
        "prompts.n_eval=8",
        "sampling.n=32",
        "reward.ensemble={k: 3}",
        "sampling.grown_from={n_eval: 4, n: 16}",
    )
    assert np.array_equal(e1.members, e2.members[:, :4, :16]) and np.array_equal(e1.proxy, e2.proxy[:4, :16])


def test_grown_prompts_keep_the_train_set_and_the_first_eval_prompts():
    from goodhart.pipeline.base.prompts import load_prompts
    from goodhart.pipeline.config.schema import PromptsConfig

    train, ev = load_prompts(PromptsConfig(n_train=8, n_eval=4))
    train2, ev2 = load_prompts(PromptsConfig(n_train=8, n_eval=12), grown_from=4)
    assert train2 == train and ev2[:4] == ev and len(ev2) == 12 and not set(ev2) & set(train2)


def test_point_ids_ignore_eval_resolve_and_a_missing_grown_from():
    from goodhart.pipeline.sweeps.point import point_id

    base = point_id(load_config("configs/base.yaml", []))
    assert point_id(load_config("configs/base.yaml", ["eval.resolve.budget=10000"])) == base
    grown = load_config("configs/base.yaml", ["prompts.n_eval=64", "sampling.grown_from={n_eval: 32, n: 256}"])
    assert point_id(grown) != base
    with pytest.raises(Exception, match="grown pool"):
        load_config("configs/base.yaml", ["sampling.grown_from={n_eval: 32, n: 256}", "sampling.n=384"])


def test_grown_text_pool_keeps_the_first_pass(small_model_dir, tmp_path):
    from goodhart.pipeline.base.context import PointContext

    ov = [
        "model.name=path",
        f"model.path={small_model_dir}",
        "prompts.n_train=4",
        "sampling.max_new_tokens=6",
        "tracking.enabled=false",
    ]
    a = PointContext(load_config(None, [*ov, "prompts.n_eval=2", "sampling.n=4"]), tmp_path, False)
    b = PointContext(
        load_config(None, [*ov, "prompts.n_eval=4", "sampling.n=8", "sampling.grown_from={n_eval: 2, n: 4}"]),
        tmp_path,
        False,
    )
    pa, pb = a.pool(), b.pool()
    assert a.prompts()[0] == b.prompts()[0] and b.prompts()[1][:2] == a.prompts()[1]
    assert [row[:4] for row in pb.completions[:2]] == pa.completions
    assert np.array_equal(pa.utility, pb.utility[:2, :4]) and pb.proxy.shape == (4, 8)


SWEEP = """
name: grow
base: {base}
set:
  reward: distributional
  reward.error: "student_t(df=2)"
  sampling.n: 64
  prompts.n_eval: 8
  tracking.enabled: false
  output_dir: {out}
  eval.resolve.draws: {budget}
  eval.resolve.max_rounds: 2
grid:
  algo: [bon]
  algo.n: [1, 4, 16]
"""


def _sweep(tmp_path: Path, budget: int, capsys) -> tuple[int, str]:
    from goodhart.pipeline.cli.main import main

    f = tmp_path / "grow.yaml"
    f.write_text(SWEEP.format(base=Path("configs/base.yaml").resolve(), out=tmp_path / "runs", budget=budget))
    rc = main(["sweep", str(f), "--quiet"])
    return rc, capsys.readouterr().out


def test_resolve_rounds_spend_within_budget_replay_and_report(tmp_path, capsys):
    rc, out = _sweep(tmp_path, 50_000, capsys)
    assert rc == 0, out
    root = tmp_path / "runs" / "grow"
    rec = json.loads((root / "resolve.json").read_text())
    assert "before resolve rounds (look 1)" in out and "after " in out and "sweep verdict:" in out
    assert rec["spent"][0] == 0 and rec["spent"][1] <= 50_000 and len(rec["alphas"]) == 3
    assert sum(rec["alphas"]) == pytest.approx(0.05)
    if rec["rounds"]:
        assert rec["superseded"] and max(rec["points"].values()) >= 2
        # grown points carry the first pass's size and twice its prompts
        grown = [k for k, v in rec["points"].items() if v >= 2]
        cfg = (root / "points" / grown[0] / "config.yaml").read_text()
        assert "grown_from" in cfg and "n_eval: 8" in cfg
    # a rerun replays the same decisions and finds everything done
    rc, out2 = _sweep(tmp_path, 50_000, capsys)
    assert rc == 0 and " 0 run," in out2
    assert json.loads((root / "resolve.json").read_text()) == rec
    # the report reads the record: no superseded point, claims at each look's alpha
    from goodhart.pipeline.report.verdicts import gold_labels

    lab = gold_labels(root)
    ids = {i for pid in lab["point_id"] for i in str(pid).split("+")}
    assert not ids & set(rec["superseded"])
    assert set(np.round(lab["claim_level"], 6)) <= {round(a / 2, 6) for a in rec["alphas"]}


def test_no_budget_no_rounds(tmp_path, capsys):
    rc, out = _sweep(tmp_path, 0, capsys)
    assert rc == 0 and not (tmp_path / "runs" / "grow" / "resolve.json").exists()
    assert "resolve round" not in out and "sweep verdict:" in out
