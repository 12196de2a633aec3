"""TRL's RLOO and GRPO behind our glue (pipeline/optimizers/{rloo,grpo,trl_common}.py) on the small
built-in model: tiny budgets (2-4 steps, 4 prompts x 4 completions of 8 tokens), real entry points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import TRL, run_direct, tiny_cfg

from goodhart.eval import metrics as M
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.config.load import configs_dir

TINY_RUN = TRL  # the algo= override comes first


def make_cfg(model_dir: Path, kind: str, *overrides: str):
    return tiny_cfg(model_dir, kind, *overrides)


run_algo = run_direct  # (PointOutput, [(step, metrics), ...])


def changed_weights(checkpoint: Path, base_dir: Path) -> tuple[int, int]:
    from safetensors.torch import load_file

    trained, base = load_file(checkpoint / "model.safetensors"), load_file(base_dir / "model.safetensors")
    return sum(not torch.equal(base[k], trained[k]) for k in base), len(base)


# ============================================================================================
# The glue, without a model
# ============================================================================================
def test_trl_log_names_map_to_ours_and_trl_kl_is_never_our_kl():
    from goodhart.pipeline.optimizers.trl_common import translate

    logs = {
        "rewards/proxy/mean": 1.5,
        "rewards/utility/mean": 0.5,
        "rewards/proxy/std": 0.1,
        "kl": 0.02,
        "loss": -0.1,
        "grad_norm": 2.0,
        "entropy": 2.2,
        "step_time": 0.1,
        "clip_ratio/region_mean": 0.0,
        "epoch": 0.5,
        "train_runtime": 3.0,
        "odd(key)": 1.0,
        "none": None,
    }
    out = translate(logs, beta=0.05)
    assert out[M.PROXY] == 1.5 and out[M.UTILITY] == 0.5 and out[M.ERROR] == pytest.approx(1.0)
    assert out[M.TRL_KL] == 0.02 and M.KL not in out and M.KL_K1 not in out  # TRL's KL never lands on ours
    assert out[M.LOSS_TOTAL] == -0.1 and out[M.GRAD_NORM] == 2.0 and out[M.ENTROPY] == 2.2
    assert out[M.STEP_SECONDS] == 0.1 and out[M.KL_COEF] == 0.05
    assert out["trl/rewards/proxy/std"] == 0.1 and out["trl/clip_ratio/region_mean"] == 0.0
    assert out["trl/odd_key_"] == 1.0  # sanitized for MLflow
    assert not {"epoch", "train_runtime", "trl/epoch", "trl/none"} & set(out)
    assert translate({"train_runtime": 3.0, "epoch": 1.0}, beta=0.1) == {}  # the end-of-training summary: nothing


def test_one_scorer_pass_feeds_both_reward_functions():
    from goodhart.pipeline.optimizers.trl_common import RewardBridge

    calls = []

    class Scorer:
        clip = None

        def components(self, prompts, completions):
            calls.append(list(completions))
            p = np.array([len(c) for c in completions], dtype=float)
            return {"proxy": p, "utility": -p, "error": 2 * p}

    proxy, utility = RewardBridge(Scorer()).functions()
    assert (proxy.__name__, utility.__name__) == ("proxy", "utility")  # TRL logs rewards/proxy/*, rewards/utility/*
    assert proxy(["a", "b"], ["xx", "y"], completion_ids=None) == [2.0, 1.0]
    assert utility(["a", "b"], ["xx", "y"], trainer_state=None) == [-2.0, -1.0]
    assert len(calls) == 1
    assert proxy(["a"], ["zzz"]) == [3.0] and len(calls) == 2


def test_only_complete_checkpoints_are_resumed_from(tmp_path):
    from goodhart.pipeline.optimizers.trl_common import checkpoint_step, last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "none") is None and checkpoint_step(None) == 0
    for step, complete in ((2, True), (4, True), (6, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "model.safetensors").write_text("x")
        if complete:
            (d / "trainer_state.json").write_text("{}")
    last = last_complete_checkpoint(tmp_path)
    assert last == tmp_path / "checkpoint-4" and checkpoint_step(last) == 4
    assert not (tmp_path / "checkpoint-6").exists()  # a save cut short is removed, never resumed


# ============================================================================================
# Training
# ============================================================================================
@pytest.mark.parametrize("kind,lora", [("rloo", False), ("grpo", True)])
def test_a_few_steps_change_the_policy_and_log_both_rewards(small_model_dir, tmp_path, kind, lora):
    extra = ["algo.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}"] if lora else []
    cfg = make_cfg(small_model_dir, kind, "algo.steps=2", "algo.checkpoint_every=2", "algo.kl.coef=0.1", *extra)
    out, log = run_algo(cfg, tmp_path / "p")
    assert [s for s, _ in log] == [1, 2]
    for _, m in log:
        assert {M.PROXY, M.UTILITY, M.ERROR, M.TRL_KL, M.KL_COEF, M.LOSS_TOTAL, M.ENTROPY, M.STEP_SECONDS} <= set(m)
        assert M.KL not in m and m[M.KL_COEF] == 0.1  # per step: TRL's KL under its own name, ours only in the row
        assert all(np.isfinite(v) for v in m.values())
        assert M.REWARD_CLIPPED not in m  # nothing clipped unless `clip:` is set

    ckpt = tmp_path / "p" / "checkpoints" / "checkpoint-2"
    if lora:  # adapters trained; the base (pi_0 with adapters off) untouched
        from safetensors.torch import load_file

        adapters = load_file(ckpt / "adapter_model.safetensors")
        assert adapters and any(v.abs().sum() > 0 for k, v in adapters.items() if "lora_B" in k)
    else:
        changed, total = changed_weights(ckpt, small_model_dir)
        assert changed > total // 2

    row = out.row
    for name in (M.PROXY, M.UTILITY, M.KL, M.GAIN_PROXY, M.GAIN_UTILITY):
        assert np.isfinite(row[name]) and row[M.lo(name)] <= row[name] <= row[M.hi(name)]
    assert row[M.KL_ESTIMATOR] == "seq_k1" and row[M.N_SAMPLES] == 4 and np.isfinite(row[M.KL_K3])
    assert row[M.TRAIN_STEPS] == 2 and row[M.RESUMED_FROM] == 0 and row[M.KL_COEF] == 0.1
    assert row[M.TRL_VERSION].startswith("1.")


def test_grpo_at_beta_zero_logs_no_trl_kl_but_the_row_has_ours(small_model_dir, tmp_path):
    cfg = make_cfg(small_model_dir, "grpo", "algo.steps=2", "algo.kl.coef=0.0", "algo.lr=3e-3")
    out, log = run_algo(cfg, tmp_path / "p")
    assert all(M.TRL_KL not in m for _, m in log)  # TRL loads no reference and measures nothing
    assert all(m[M.KL_COEF] == 0.0 for _, m in log)
    row = out.row
    assert row[M.KL_ESTIMATOR] == "seq_k1" and np.isfinite(row[M.KL]) and row[M.KL] != 0.0
    assert row[M.KL_K3] > 0  # the policy moved off pi_0


def test_clipping_is_off_unless_configured_and_logged_when_on(small_model_dir, tmp_path):
    cfg = make_cfg(small_model_dir, "rloo", "algo.steps=1", "clip={high: 0.1}")
    _, log = run_algo(cfg, tmp_path / "p")
    [(_, m)] = log
    assert M.REWARD_CLIPPED in m and m[M.PROXY] <= 0.1 and 0 <= m[M.REWARD_CLIPPED] <= 1


def test_preemption_checkpoints_and_stops(small_model_dir, tmp_path):
    import os
    import signal

    from goodhart.pipeline.train import Preempted
    from goodhart.pipeline.train import preemption as preempt

    cfg = make_cfg(small_model_dir, "grpo", "algo.steps=3", "algo.checkpoint_every=0")
    steps: list[int] = []

    def log(metrics, step):
        steps.append(step)
        if step == 1:  # SLURM's warning arrives after step 1 is logged, while step 2 runs
            os.kill(os.getpid(), signal.SIGUSR1)

    from goodhart.pipeline import optimizers

    try:
        with pytest.raises(Preempted, match=r"preempted \(SIGUSR1\) after step 2") as info:
            optimizers.get("grpo")(PointContext(cfg, tmp_path / "p", progress=False, log_metrics=log))
        assert info.value.code == preempt.EXIT_REQUEUE
    finally:
        preempt.reset()
    assert not preempt._installed
    assert steps == [1, 2]  # step 2 finished, then saved (checkpoint_every=0: a preemption saves anyway)
    assert [p.name for p in (tmp_path / "p" / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    steps.clear()
    out = optimizers.get("grpo")(
        PointContext(cfg, tmp_path / "p", progress=False, log_metrics=lambda m, s: steps.append(s))
    )
    assert steps == [3] and out.row[M.RESUMED_FROM] == 2


def test_goodhart_run_rloo_and_grpo_end_to_end(small_model_dir, in_tmp, capsys):
    from mlflow import MlflowClient

    from goodhart.pipeline.cli.main import main

    client = MlflowClient(f"sqlite:///{in_tmp / 'mlflow.db'}")
    ours: set[str] = set()
    for kind in ("rloo", "grpo"):  # two points of one `run` experiment, one MLflow store
        args = [
            "run",
            str(configs_dir() / "base.yaml"),
            "model.name=path",
            f"model.path={small_model_dir}",
            f"algo={kind}",
            *[a for a in TINY_RUN if a != "tracking.enabled=false"],
            "algo.steps=2",
            "algo.kl.coef=0.1",
            "--quiet",
        ]
        assert main(args) == 0
        assert kind in capsys.readouterr().out
        [row] = [
            r
            for r in (json.loads(p.read_text()) for p in (in_tmp / "runs" / "run" / "points").glob("*/result.json"))
            if r["algo"] == kind
        ]
        assert row["x_name"] == "kl.coef" and row["x"] == 0.1 and row["status"] == "done"
        assert row[M.KL_ESTIMATOR] == "seq_k1"
        for name in (M.KL, M.PROXY, M.UTILITY):
            assert M.lo(name) in row and M.hi(name) in row

        run = client.get_run(row["mlflow_run_id"])
        ours |= {run.info.run_id, run.data.tags["mlflow.parentRunId"]}  # each `goodhart run`: a parent and its point
        for name in (M.PROXY, M.UTILITY):  # per step (1, 2) under train/, the final row under eval/
            assert sorted(h.step for h in client.get_metric_history(run.info.run_id, M.train_name(name))) == [1, 2]
            assert run.data.metrics[M.eval_name(name)] == row[name]
        trl_keys = (M.TRL_KL, M.KL_COEF, M.LOSS_TOTAL, "trl/rewards/proxy/std")
        assert {M.train_name(k) for k in trl_keys} <= set(run.data.metrics)
        assert [h.step for h in client.get_metric_history(run.info.run_id, M.eval_name(M.KL))] == [
            2
        ]  # our KL: the row's
    # TRL opened no MLflow run of its own (report_to="none"): only our parents and points
    assert {r.info.run_id for r in client.search_runs([run.info.experiment_id])} == ours
