"""The online alarm (pipeline/train/alarm_monitor.py): checks every K steps on the scored batch,
stop on alarm, and the last quiet weights kept; wired into PPO, bon-ft and the TRL trainers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from goodhart.eval import metrics as M
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.base.pool import Pool
from goodhart.pipeline.config.load import load_config
from goodhart.pipeline.train import online_alarm
from goodhart.pipeline.train.alarm_monitor import AlarmMonitor


class _Scorer:
    """A real (tiny) scorer: proxy = the number each completion spells, utility = NaN."""

    clip = None

    def components(self, prompts, completions):
        p = np.array([float(c) for c in completions])
        return {"proxy": p, "utility": np.full_like(p, np.nan), "error": np.full_like(p, np.nan)}


def _heavy(rng: np.random.Generator, size) -> np.ndarray:
    """A Gaussian bulk with a Pareto(1.5) tail: a batch beyond the base's top buys its gain in a
    tail heavier than exponential (rule 5's `alarm`; beside a Gaussian base's top it is `watch`)."""
    return rng.normal(size=size) + 0.3 * rng.pareto(1.5, size)


def _ctx(heavy: bool = False) -> PointContext:
    cfg = load_config(None, ["reward=distributional"])
    ctx = PointContext(cfg, Path("."), progress=False)
    rng = np.random.default_rng(0)
    b = _heavy(rng, (4, 2000)) if heavy else rng.normal(size=(4, 2000))
    ctx._pool = Pool(None, None, b, np.full_like(b, np.nan), np.full_like(b, np.nan), "k")
    return ctx


def test_checks_every_k_steps_stops_on_alarm_and_restores_the_last_quiet_weights():
    model = torch.nn.Linear(3, 1)
    mon = AlarmMonitor(_ctx(heavy=True), every=2, stop=True)
    scorer = mon.recording(_Scorer())
    w0 = model.weight.detach().clone()
    rng = np.random.default_rng(1)

    def step(vals, kl):
        scorer.components(["x"] * len(vals), [repr(float(v)) for v in vals])
        with torch.no_grad():
            model.weight.add_(1.0)  # training moves the weights every step
        return vals, kl

    # step 1: not due; step 2: a bulk-like batch (quiet) -> snapshot; step 3: not due;
    # step 4: a batch far beyond anything the base produced -> alarm -> stop
    logs = {}
    for s, (vals, kl) in enumerate(
        [
            (rng.normal(0.1, 1, 256), 0.01),
            (rng.normal(0.2, 1, 256), 0.05),
            (rng.normal(0.3, 1, 256), 0.1),
            (np.full(256, 40.0), 0.2),
        ],
        start=1,
    ):
        step(vals, kl)
        logs[s] = mon.check(s, kl, model)
        if s == 2:
            w_quiet = model.weight.detach().clone()
        if mon.stopped:
            break
    assert logs[1] == {} and logs[3] == {}
    assert logs[2][M.ALARM_CODE] == 0.0 and logs[4][M.ALARM_CODE] == 2.0
    assert all(isinstance(v, float) for v in logs[4].values())  # numbers only: MLflow takes numbers
    assert mon.stopped_at == 4 and mon.kept_step == 2
    assert not torch.equal(model.weight, w_quiet)
    mon.restore(model)
    assert torch.equal(model.weight, w_quiet) and not torch.equal(model.weight, w0)
    assert mon.row() == {M.ALARM_STOPPED: 4.0, M.ALARM_KEPT: 2.0}


def test_the_online_base_carries_the_tail_shape_test_of_the_pool_based_alarm():
    """The monitor's base statistics hold the null's replicates, so the base pool's tail-shape
    test joins the gain test (each at alpha / 2) as in the pool-based alarm: a Gaussian base pool
    reads light (large p), a Pareto(1.5) one heavy (small p)."""
    light = AlarmMonitor(_ctx(), every=2, stop=False).base()
    ctx = _ctx()
    b = np.random.default_rng(0).pareto(1.5, size=(4, 2000))
    ctx._pool = Pool(None, None, b, np.full_like(b, np.nan), np.full_like(b, np.nan), "k2")
    heavy = AlarmMonitor(ctx, every=2, stop=False).base()
    assert light.tail is not None and heavy.tail is not None
    assert light.tail[1] > 0.05 and heavy.tail[1] < 0.025


def test_without_stop_on_alarm_the_run_goes_on_and_nothing_is_restored():
    model = torch.nn.Linear(3, 1)
    mon = AlarmMonitor(_ctx(heavy=True), every=1, stop=False)
    scorer = mon.recording(_Scorer())
    scorer.components(["x"] * 64, ["40.0"] * 64)
    assert mon.check(1, 0.2, model)[M.ALARM_CODE] == 2.0
    assert not mon.stopped and mon.row() == {}
    w = model.weight.detach().clone()
    mon.restore(model)
    assert torch.equal(model.weight, w)


def test_with_a_probe_the_check_reads_the_fresh_batch_per_prompt_not_the_training_batch():
    """algo.alarm_samples: the check reads the probe's (P, M) samples on the pool's prompts,
    each centred on its own prompt's base mean, with the probe's own KL; the training batch
    (here one that alarms on its own) is not read."""
    ctx = _ctx(heavy=True)
    shift = np.array([-3.0, -1.0, 1.0, 3.0])  # prompts whose base means differ widely
    ctx._pool = dataclasses.replace(ctx._pool, proxy=ctx._pool.proxy + shift[:, None])
    means = ctx._pool.proxy.mean(axis=1, keepdims=True)  # shift + the Pareto part's mean
    fresh = means + 0.5 + np.random.default_rng(5).normal(size=(4, 64))  # the bulk moved by 0.5
    seen = []

    def probe(model, step):
        seen.append(step)
        return fresh, 0.02  # under the KL a 0.5 sd shift needs (0.125): its gain beats the null's bound

    model = torch.nn.Linear(3, 1)
    mon = AlarmMonitor(ctx, every=1, stop=False, probe=probe)
    mon.recording(_Scorer()).components(["x"] * 64, ["40.0"] * 64)  # a batch that alone alarms
    row = mon.check(1, 0.2, model)
    assert seen == [1] and row[M.ALARM_N_EFF] == pytest.approx(4 * 64)
    # per prompt, the shift stands out of a bulk of sd 1 (beyond the null's bound at KL 0.02: watch,
    # a bulk move, not a tail: no alarm); read against the +-3 spread of prompt means it would not
    assert row[M.ALARM_CODE] == 1.0 and row[M.ALARM_SIGMA] < 1.2
    assert row[M.ALARM_DV_RATIO] * row[M.ALARM_DV_BOUND] == pytest.approx(0.5, abs=0.15)  # the gain
    # without the probe the same recorded batch alarms
    plain = AlarmMonitor(ctx, every=1, stop=False)
    plain.recording(_Scorer()).components(["x"] * 64, ["40.0"] * 64)
    assert plain.check(1, 0.2, model)[M.ALARM_CODE] == 2.0


@pytest.fixture()
def always_alarm(monkeypatch):
    """The real alarm, with its level forced to `alarm`: tests the stop wiring of an optimizer."""
    real = online_alarm.alarm

    def forced(*a, **k):
        return dataclasses.replace(real(*a, **k), level="alarm", score=9.0)

    monkeypatch.setattr(online_alarm, "alarm", forced)


def test_ppo_logs_the_alarm_every_k_steps(small_model_dir, tmp_path):
    from tests.test_ppo import make_cfg, run_ppo

    out, log = run_ppo(make_cfg(small_model_dir, "algo.steps=4", "algo.alarm_every=2"), tmp_path / "p")
    has = {s for s, m in log if M.ALARM_SCORE in m}
    assert has == {2, 4}
    assert out.row[M.ALARM_LEVEL] in ("quiet", "watch", "alarm") and M.ALARM_STOPPED not in out.row


def test_the_alarm_does_not_perturb_training(small_model_dir, tmp_path):
    """The first check samples the base pool (which seeds torch): training must not notice."""
    from tests.test_ppo import make_cfg, run_ppo

    seed = "seed=7"  # a pool no other test has cached: the check really samples it
    _, with_alarm = run_ppo(make_cfg(small_model_dir, seed, "algo.steps=4", "algo.alarm_every=2"), tmp_path / "a")
    _, without = run_ppo(make_cfg(small_model_dir, seed, "algo.steps=4", "algo.alarm_every=0"), tmp_path / "b")
    assert M.ALARM_SCORE in dict(with_alarm)[2] and all(M.ALARM_SCORE not in m for _, m in without)
    for (s1, m1), (s2, m2) in zip(with_alarm, without):
        assert s1 == s2 and m1[M.PROXY] == m2[M.PROXY] and m1[M.KL] == m2[M.KL]


def test_ppo_probe_checks_fresh_samples_without_perturbing_training(small_model_dir, tmp_path):
    """algo.alarm_samples=3: each check reads 3 fresh samples per eval prompt (n_eff = 3 x
    n_eval, not the training batch's size), and the training stream is the same as without."""
    from tests.test_ppo import make_cfg, run_ppo

    steps = ("algo.steps=4", "algo.alarm_every=2")
    cfg = make_cfg(small_model_dir, *steps, "algo.alarm_samples=3")
    _, probed = run_ppo(cfg, tmp_path / "a")
    _, batch = run_ppo(make_cfg(small_model_dir, *steps), tmp_path / "b")
    checks = dict(probed)
    assert checks[2][M.ALARM_N_EFF] == pytest.approx(3 * cfg.prompts.n_eval)
    assert dict(batch)[2][M.ALARM_N_EFF] != pytest.approx(3 * cfg.prompts.n_eval)
    for (s1, m1), (s2, m2) in zip(probed, batch):
        assert s1 == s2 and m1[M.PROXY] == m2[M.PROXY] and m1[M.KL] == m2[M.KL]


def test_the_trl_trainers_refuse_alarm_samples():
    from goodhart.pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="alarm_samples"):
        load_config(None, ["algo=rloo", "algo.alarm_samples=4"])


def test_ppo_stops_on_alarm_and_keeps_the_start_policy(small_model_dir, tmp_path, always_alarm):
    from tests.test_ppo import make_cfg, run_ppo

    cfg = make_cfg(small_model_dir, "algo.steps=6", "algo.alarm_every=2", "algo.stop_on_alarm=true")
    out, log = run_ppo(cfg, tmp_path / "p")
    assert [s for s, _ in log] == [1, 2]  # stopped at the first check
    assert out.row[M.ALARM_STOPPED] == 2 and out.row[M.ALARM_KEPT] == 0
    assert out.row[M.KL] == pytest.approx(0.0, abs=1e-4)  # the kept policy is the base itself


def test_bon_ft_stops_on_alarm(small_model_dir, tmp_path, always_alarm):
    from goodhart.pipeline.optimizers import bon_ft
    from tests.test_bon_ft import make_cfg

    cfg = make_cfg(small_model_dir, "algo.rounds=3", "algo.epochs=1", "algo.alarm_every=1", "algo.stop_on_alarm=true")
    log: list = []
    out = bon_ft.run(PointContext(cfg, tmp_path / "p", progress=False, log_metrics=lambda m, s: log.append((s, m))))
    assert [s for s, _ in log] == [1] and M.ALARM_CODE in log[0][1]
    assert out.row[M.ALARM_STOPPED] == 1 and out.row[M.ALARM_KEPT] == 0


@pytest.mark.slow
def test_grpo_stops_on_alarm(small_model_dir, tmp_path, always_alarm):
    from tests.test_trl_trainers import make_cfg, run_algo

    cfg = make_cfg(small_model_dir, "grpo", "algo.steps=5", "algo.alarm_every=2", "algo.stop_on_alarm=true")
    out, log = run_algo(cfg, tmp_path / "p")
    assert max(s for s, _ in log) == 2 and out.row[M.ALARM_STOPPED] == 2


def test_the_online_core_checks_at_the_first_report_past_each_multiple_and_reads_that_window():
    """train/online_alarm.py, shared by the pipeline's trainers and the TRL callback: due at the
    first reported step at or after each multiple of `every` (logs every 3 steps, every 5: checks
    at 6, 12, 15, 21); a due check with an empty window waits for the next report with samples; a
    resumed run goes on at the next multiple; it reads the window it is given, not a pool of windows."""
    from goodhart.eval.alarm import AlarmRule, BaseStats
    from goodhart.pipeline.train.online_alarm import OnlineAlarm

    base = BaseStats.for_rule(_heavy(np.random.default_rng(0), (1, 2000)), AlarmRule(), per_prompt=False)
    core = OnlineAlarm(AlarmRule(), every=5)
    rng = np.random.default_rng(1)
    checked = []
    for step in range(3, 24, 3):
        if core.due(step):
            c = core.read(step, rng.normal(size=16), 0.1, base)
            checked.append((step, c.proxies.size, c.level))
    assert [s for s, _, _ in checked] == [6, 12, 15, 21] and {n for _, n, _ in checked} == {16}
    assert core.last_quiet_step == 21 and core.stopped_at is None
    assert core.due(25) and core.read(25, np.empty(0), 0.1, base) is None and core.due(26)  # still due
    c = core.read(26, np.full(16, 40.0), 0.1, base)
    assert c.level == "alarm" and not c.stop and core.last_quiet_step == 21  # the last not flagged
    core.resume_at(33)
    assert not core.due(34) and core.due(35)
    stopper = OnlineAlarm(AlarmRule(), every=1, stop=True)
    c = stopper.read(1, np.full(16, 40.0), 0.1, base)
    assert c.stop and stopper.stopped_at == 1 and c.metrics()[M.ALARM_CODE] == 2.0
