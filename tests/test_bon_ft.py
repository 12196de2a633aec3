"""Best-of-n fine-tuning (pipeline/optimizers/bon_ft.py) on the small built-in model: 1-3 rounds of
8 samples per prompt on 32 prompts, 8 tokens each, real entry points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import TINY, run_direct, tiny_cfg

from goodhart.eval import metrics as M
from goodhart.pipeline.config.load import configs_dir

TINY_RUN = TINY["bon-ft"]
THE = "reward={type: keyword, words: [the]}"  # proxy = utility = how often "the" appears (~0.15 in 8 tokens)


def make_cfg(model_dir: Path, *overrides: str):
    return tiny_cfg(model_dir, "bon-ft", *overrides)


run_bon_ft = run_direct  # (PointOutput, [(step, metrics), ...])


def test_collate_masks_the_prompt_and_pads_both_sides():
    from goodhart.pipeline.optimizers.bon_ft import collate

    batch = [(torch.tensor([5, 6, 7]), torch.tensor([8, 2])), (torch.tensor([9]), torch.tensor([10, 11, 2]))]
    ids, am, resp, rmask, tq = collate(batch, pad_id=0, device="cpu")
    assert tq == 3
    assert ids.tolist() == [[5, 6, 7, 8, 2, 0], [0, 0, 9, 10, 11, 2]]  # [left-padded prompt | right-padded completion]
    assert am.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert resp.tolist() == [[8, 2, 0], [10, 11, 2]] and rmask.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_a_round_raises_the_proxy_of_the_policys_own_samples(small_model_dir, tmp_path):
    cfg = make_cfg(small_model_dir, THE, "algo.rounds=2")
    out, log = run_bon_ft(cfg, tmp_path / "p")
    assert [s for s, _ in log] == [1, 2]
    (_, r1), (_, r2) = log
    for m in (r1, r2):
        assert {
            M.PROXY,
            M.UTILITY,
            M.KEPT_PROXY,
            M.KEPT_UTILITY,
            M.LOSS_SFT,
            M.LOSS_TOTAL,
            M.KL,
            M.KL_K1,
            M.KL_K3,
            M.LENGTH,
            M.STEP_SECONDS,
            M.BON_N,
        } <= set(m)
        assert all(np.isfinite(v) for v in m.values())
        assert m[M.KEPT_PROXY] > m[M.PROXY]  # the best of 8 beats the average
        assert M.LOSS_KL not in m  # kl_coef = 0: no KL term
    # round 1 samples pi_0; round 2 samples the policy tuned once on pi_0's best-of-8 (256 samples each)
    assert r1[M.PROXY] < 0.3 and r2[M.PROXY] > r1[M.PROXY] + 0.2, (r1[M.PROXY], r2[M.PROXY])
    assert r1[M.KL] > 0.5  # our KL after the first round: the tuned policy has left pi_0

    row = out.row
    assert row[M.GAIN_PROXY] > 0.3 and row[M.lo(M.GAIN_PROXY)] > 0
    assert row[M.KL_ESTIMATOR] == "seq_k1" and row[M.KL] > 0.5
    assert (
        row[M.TRAIN_ROUNDS] == 2 and row[M.TRAIN_STEPS] == 2 * 3 * 4 and row[M.RESUMED_FROM] == 0
    )  # 32 kept / 8 = 4 steps/epoch
    assert row[M.BON_N] == 8 and len(out.examples) == 2


def test_kl_coefficient_holds_the_policy_near_the_base(small_model_dir, tmp_path):
    # A smaller step size than elsewhere: Adam moves every weight by ~lr whatever the loss, a KL
    # floor that no coefficient removes (at lr 2e-3 it sits near 4 nats here; at 5e-4 below 1).
    kl = {}
    for coef in (0.0, 5.0):
        cfg = make_cfg(
            small_model_dir, THE, "algo.rounds=1", f"algo.kl.coef={coef}", "algo.lr=5e-4", "algo.round_kl_samples=64"
        )
        _, [(_, m)] = run_bon_ft(cfg, tmp_path / f"c{coef}")
        kl[coef] = m[M.KL]
        assert (M.LOSS_KL in m) == (coef > 0) and m[M.KL_COEF] == coef
        if coef > 0:
            assert m[M.LOSS_TOTAL] == pytest.approx(m[M.LOSS_SFT] + coef * m[M.LOSS_KL], rel=0.05)
    assert kl[0.0] > 1.5 and kl[5.0] < 0.6 * kl[0.0], kl  # seeds 0-3: ratios 0.28-0.46


def test_lora_tunes_adapters_only(small_model_dir, tmp_path):
    cfg = make_cfg(
        small_model_dir,
        THE,
        "algo.rounds=1",
        "algo.kl.coef=0.5",
        "algo.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj]}",
    )
    out, [(_, m)] = run_bon_ft(cfg, tmp_path / "p")
    assert np.isfinite(m[M.LOSS_KL]) and m[M.KL] != 0 and np.isfinite(out.row[M.KL])
    from safetensors.torch import load_file

    trained = load_file(tmp_path / "p" / "checkpoints" / "step-000001" / "model.safetensors")
    base = load_file(small_model_dir / "model.safetensors")
    assert any(trained[k].abs().sum() > 0 for k in trained if "lora_B" in k)
    for k, v in base.items():  # the frozen base (pi_0 with adapters off) is untouched
        match = [t for t in trained if t.endswith(k.replace("weight", "base_layer.weight")) or t.endswith(k)]
        assert match and torch.equal(trained[match[0]], v), k


def test_goodhart_run_bon_ft_end_to_end(small_model_dir, in_tmp, capsys):
    from goodhart.pipeline.cli.main import main

    args = [
        "run",
        str(configs_dir() / "base.yaml"),
        "model.name=path",
        f"model.path={small_model_dir}",
        *[a for a in TINY_RUN if a != "tracking.enabled=false"],
        "algo.rounds=2",
        "algo.epochs=1",
        "--quiet",
    ]
    assert main(args) == 0
    assert "bon-ft" in capsys.readouterr().out
    [res] = list((in_tmp / "runs" / "run" / "points").glob("*/result.json"))
    row = json.loads(res.read_text())
    assert row["algo"] == "bon-ft" and row["x_name"] == "n" and row["x"] == 8 and row["status"] == "done"
    assert row[M.KL_ESTIMATOR] == "seq_k1"
    for name in (M.KL, M.PROXY, M.UTILITY):
        assert M.lo(name) in row and M.hi(name) in row
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{in_tmp / 'mlflow.db'}")
    run = client.get_run(row["mlflow_run_id"])
    for name in (M.PROXY, M.UTILITY, M.KL):  # per round (1, 2) under train/, the final row under eval/ at the last
        assert sorted(h.step for h in client.get_metric_history(run.info.run_id, M.train_name(name))) == [1, 2]
        assert [h.step for h in client.get_metric_history(run.info.run_id, M.eval_name(name))] == [2]
    assert {M.train_name(k) for k in (M.KEPT_PROXY, M.KEPT_UTILITY, M.LOSS_SFT)} <= set(run.data.metrics)
