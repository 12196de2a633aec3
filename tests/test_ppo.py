"""PPO (pipeline/optimizers/ppo.py) and the trained-optimizer machinery (pipeline/train/) on the
small built-in model: tiny budgets (a few steps, 8 samples of 8 tokens), real entry points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import TINY, run_direct, tiny_cfg

from goodhart.eval import metrics as M
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.config.load import configs_dir

TINY_RUN = TINY["ppo"]
THEN = "reward={type: keyword, words: [then]}"  # proxy = utility = how often "then" appears


def make_cfg(model_dir: Path, *overrides: str):
    return tiny_cfg(model_dir, "ppo", *overrides)


run_ppo = run_direct  # (PointOutput, [(step, metrics), ...])


def series(log, name):
    return np.array([m[name] for _, m in log])


def test_a_few_steps_change_the_policy_and_log_both_rewards(small_model_dir, tmp_path):
    cfg = make_cfg(small_model_dir, "algo.steps=3", "algo.checkpoint_every=3")
    out, log = run_ppo(cfg, tmp_path / "p")
    assert [s for s, _ in log] == [1, 2, 3]
    for _, m in log:
        assert {
            M.PROXY,
            M.UTILITY,
            M.KL,
            M.KL_K1,
            M.KL_K3,
            M.KL_COEF,
            M.LOSS_POLICY,
            M.LOSS_VALUE,
            M.ENTROPY,
            M.CLIPFRAC,
            M.LENGTH,
        } <= set(m)
        assert all(np.isfinite(v) for v in m.values())
    assert log[0][1][M.KL] == 0.0  # the first batch comes from pi_0 itself
    assert M.REWARD_CLIPPED not in log[0][1] and M.KL_CLAMPED not in log[0][1]  # nothing clipped unless asked

    # the trained weights (last checkpoint) differ from the base's; the value head has moved from 0
    from safetensors.torch import load_file

    trained = load_file(tmp_path / "p" / "checkpoints" / "step-000003" / "model.safetensors")
    base = load_file(small_model_dir / "model.safetensors")
    changed = [k for k in base if not torch.equal(base[k], trained[f"lm.{k}"])]
    assert len(changed) > len(base) // 2
    assert trained["value_head.weight"].abs().sum() > 0

    row = out.row
    for name in (M.PROXY, M.UTILITY, M.KL, M.GAIN_PROXY, M.GAIN_UTILITY):
        assert np.isfinite(row[name]) and row[M.lo(name)] <= row[name] <= row[M.hi(name)]
    assert row[M.KL_ESTIMATOR] == "seq_k1" and row[M.N_SAMPLES] == 4 and row[M.N_PROMPTS] == 4
    assert row[M.TRAIN_STEPS] == 3 and row[M.RESUMED_FROM] == 0
    assert len(out.examples) == 2 and {"prompt", "completion", "proxy", "utility"} <= set(out.examples[0])


def test_ppo_raises_a_simple_reward(small_model_dir, tmp_path):
    # proxy = number of times "then" appears; the base says it ~0.03 times in 8 tokens
    cfg = make_cfg(small_model_dir, THEN, "algo.steps=30", "algo.kl.coef=0.01")
    out, log = run_ppo(cfg, tmp_path / "p")
    proxy = series(log, M.PROXY)
    assert proxy[:5].mean() < 0.5 and proxy[-5:].mean() > proxy[:5].mean() + 1.5, proxy.round(2).tolist()
    assert out.row[M.GAIN_PROXY] > 1.0 and out.row[M.GAIN_PROXY + "/lo"] > 0
    assert out.row[M.KL] > 1.0  # it paid for that in KL


def test_kl_coefficient_holds_kl_or_lets_it_grow(small_model_dir, tmp_path):
    # A dense reward (how often "the" appears) and 16 samples a step. The large coefficient's KL
    # is not exactly 0: Adam moves every weight by ~lr on noisy 16-sample gradients, which sets a
    # noise floor (~0.3 nats here); a tiny coefficient lets the policy walk ten times further.
    kl = {}
    for coef in (0.001, 3.0):
        cfg = make_cfg(
            small_model_dir,
            "reward={type: keyword, words: [the]}",
            "algo.steps=15",
            f"algo.kl.coef={coef}",
            "algo.lr=2e-4",
            "algo.samples_per_prompt=8",
            "algo.minibatch=16",
            "algo.eval_samples=8",
        )
        out, log = run_ppo(cfg, tmp_path / f"c{coef}")
        kl[coef] = (series(log, M.KL)[-5:].mean(), out.row[M.KL])
        assert (series(log, M.KL_COEF) == coef).all()  # fixed
    assert kl[3.0][1] < 0.7 and kl[3.0][0] < 1.0, kl
    assert kl[0.001][1] > 1.5 and kl[0.001][1] > 4 * kl[3.0][1], kl


def test_a_run_with_k3_in_the_reward(small_model_dir, tmp_path):
    """algo.kl.estimator=k3 end to end. Step 1 samples from pi_0 itself, where k1 = k3 = 0 on every
    token, so both runs take the same first step; from step 2 the penalties differ and so do the
    losses. The reported `kl` stays the sequence k1 either way (one measurement for every point)."""
    logs = {}
    for est in ("k1", "k3"):
        out, log = run_ppo(make_cfg(small_model_dir, "algo.steps=2", f"algo.kl.estimator={est}"), tmp_path / est)
        assert out.row[M.KL_REWARD_ESTIMATOR] == est and out.row[M.KL_ESTIMATOR] == "seq_k1"
        logs[est] = log
    (_, a1), (_, a2) = logs["k1"]
    (_, b1), (_, b2) = logs["k3"]
    assert a1[M.LOSS_TOTAL] == pytest.approx(b1[M.LOSS_TOTAL], abs=1e-6) and a1[M.KL] == b1[M.KL] == 0.0
    assert a2[M.KL] == pytest.approx(b2[M.KL], abs=1e-6)  # the same samples at step 2 ...
    assert a2[M.KL_K3] > 0 and abs(a2[M.LOSS_TOTAL] - b2[M.LOSS_TOTAL]) > 1e-6  # ... penalized differently


def test_adaptive_coefficient_moves_toward_the_target(small_model_dir, tmp_path):
    horizon, n = 100, 8  # 8 samples per step: each step moves beta by at most 0.2 * 8 / 100 = 1.6%

    def rule(coef0, kls, target):  # Ziegler et al.: what the controller must have done with the logged KLs
        out = [coef0]
        for kl in kls[:-1]:
            out.append(out[-1] * (1 + np.clip(kl / target - 1, -0.2, 0.2) * n / horizon))
        return np.array(out)

    # target far above what 5 steps reach: beta shrinks by the clipped rule every step
    cfg = make_cfg(
        small_model_dir, "algo.steps=5", "algo.kl.coef=0.5", "algo.kl.target=50", f"algo.kl.horizon={horizon}"
    )
    out, log = run_ppo(cfg, tmp_path / "down")
    coefs = series(log, M.KL_COEF)
    np.testing.assert_allclose(coefs, 0.5 * (1 - 0.2 * n / horizon) ** np.arange(5))
    assert out.row[M.KL_COEF] < coefs[-1] and out.row[M.KL_TARGET] == 50
    # target below where the policy drifts (a large step size): after step 1 (KL exactly 0) beta climbs
    cfg = make_cfg(
        small_model_dir, "algo.steps=6", "algo.kl.coef=0.01", "algo.kl.target=0.05", f"algo.kl.horizon={horizon}"
    )
    out, log = run_ppo(cfg, tmp_path / "up")
    coefs, kls = series(log, M.KL_COEF), series(log, M.KL)
    np.testing.assert_allclose(coefs, rule(0.01, kls, 0.05))
    assert kls[0] == 0 and coefs[1] < coefs[0]
    assert out.row[M.KL_COEF] > coefs[0], (coefs, kls)


def test_preemption_checkpoints_and_stops(small_model_dir, tmp_path):
    import os
    import signal

    from goodhart.pipeline.optimizers import ppo
    from goodhart.pipeline.train import Preempted
    from goodhart.pipeline.train import preemption as preempt

    cfg = make_cfg(small_model_dir, "algo.steps=5", "algo.checkpoint_every=0")
    steps: list[int] = []

    def log(metrics, step):
        steps.append(step)
        if step == 2:  # SLURM's warning arrives during step 2
            os.kill(os.getpid(), signal.SIGUSR1)

    ctx = PointContext(cfg, tmp_path / "p", progress=False, log_metrics=log)
    try:
        with pytest.raises(Preempted, match=r"preempted \(SIGUSR1\) after step 2") as info:
            ppo.run(ctx)
        assert info.value.code == preempt.EXIT_REQUEUE
    finally:
        preempt.reset()
    assert not preempt._installed  # the handler was only there during the run
    assert [p.name for p in (tmp_path / "p" / "checkpoints").iterdir()] == ["step-000002"]
    steps.clear()
    out = ppo.run(PointContext(cfg, tmp_path / "p", progress=False, log_metrics=lambda m, s: steps.append(s)))
    assert steps == [3, 4, 5] and out.row[M.RESUMED_FROM] == 2


def test_lora_trains_adapters_only_and_uses_the_disabled_adapter_as_reference(small_model_dir, tmp_path):
    cfg = make_cfg(
        small_model_dir,
        "algo.steps=2",
        "algo.checkpoint_every=2",
        "algo.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}",
    )
    out, log = run_ppo(cfg, tmp_path / "p")
    assert log[0][1][M.KL] == 0.0 and np.isfinite(out.row[M.KL])
    from safetensors.torch import load_file

    trained = load_file(tmp_path / "p" / "checkpoints" / "step-000002" / "model.safetensors")
    base = load_file(small_model_dir / "model.safetensors")
    lora_keys = [k for k in trained if "lora_" in k]
    assert lora_keys and any(trained[k].abs().sum() > 0 for k in lora_keys if "lora_B" in k)
    for k, v in base.items():  # frozen base weights are untouched
        match = [t for t in trained if t.endswith(k.replace("weight", "base_layer.weight")) or t.endswith(k)]
        assert match and torch.equal(trained[match[0]], v), k


def test_clipping_is_off_unless_configured_and_logged_when_on(small_model_dir, tmp_path):
    cfg = make_cfg(small_model_dir, "algo.steps=2", "clip={high: 0.5}", "algo.kl.clamp=0.01")
    _, log = run_ppo(cfg, tmp_path / "p")
    for _, m in log:
        assert M.REWARD_CLIPPED in m and M.KL_CLAMPED in m and m[M.PROXY] <= 0.5


def test_feature_mode_error_is_calibrated_like_the_pool(small_model_dir, tmp_path):
    from goodhart.pipeline.optimizers import ppo
    from goodhart.pipeline.train import calibrated_scorer

    reward = (
        "reward={type: synthetic, utility: {type: keyword, words: [the]}, "
        "error: {mode: feature, law: pareto, calibration_samples: 64, feature: {pattern: then}}}"
    )
    cfg = make_cfg(small_model_dir, reward, "algo.steps=2")
    ctx = PointContext(cfg, tmp_path / "p", progress=False)
    out = ppo.run(ctx)
    assert np.isfinite(out.row[M.PROXY]) and np.isfinite(out.row[M.GAIN_UTILITY])
    scorer = calibrated_scorer(ctx)
    assert scorer.error.mode == "feature" and scorer.error.fitted
    assert ctx.pool().calibration == scorer.error.state()  # the fit the base pool was scored with


def test_goodhart_run_ppo_end_to_end(small_model_dir, in_tmp, capsys):
    from goodhart.pipeline.cli.main import main

    args = [
        "run",
        str(configs_dir() / "base.yaml"),
        "model.name=path",
        f"model.path={small_model_dir}",
        *[a for a in TINY_RUN if a != "tracking.enabled=false"],
        "algo.steps=2",
        "--quiet",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ppo" in out
    [res] = list((in_tmp / "runs" / "run" / "points").glob("*/result.json"))
    row = json.loads(res.read_text())
    assert row["algo"] == "ppo" and row["x_name"] == "kl.coef" and row["status"] == "done"
    for name in (M.KL, M.PROXY, M.UTILITY):
        assert M.lo(name) in row and M.hi(name) in row
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{in_tmp / 'mlflow.db'}")
    run = client.get_run(row["mlflow_run_id"])
    hist = client.get_metric_history(run.info.run_id, M.train_name(M.UTILITY))
    assert sorted(h.step for h in hist) == [1, 2]  # per-step (1, 2) under train/
    assert {M.train_name(k) for k in (M.KL_COEF, M.PROXY, M.LOSS_POLICY)} <= set(run.data.metrics)
    # the final evaluated numbers: under eval/, equal to the result row (results.csv), at the last step
    for name in (M.KL, M.PROXY, M.UTILITY):
        assert run.data.metrics[M.eval_name(name)] == row[name]
        assert [h.step for h in client.get_metric_history(run.info.run_id, M.eval_name(name))] == [2]
