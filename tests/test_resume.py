"""Resume after a kill, for every trained optimizer (ppo, rloo, grpo, bon-ft), through the real
`run_point`: killed while step 3 is logged (the last checkpoint is step 2, a save of step 3 was cut
short), then run again, the point resumes after step 2 and ends where the uninterrupted run ends."""

from __future__ import annotations

import json

import pytest
from tiny_runs import run_direct, tiny_cfg

from goodhart.eval import metrics as M

LAST = 3  # every case runs 3 steps (bon-ft: rounds), is killed at step 3 and resumes after step 2
# kind: (overrides, complete checkpoints (glob), a checkpoint's name, a cut-short save's name)
OURS = ("step-*", "step-{:06d}", ".tmp-step-{:06d}")  # goodhart.pipeline.train.checkpoint
TRLS = ("checkpoint-*", "checkpoint-{}", "checkpoint-{}")  # TRL's (no trainer_state.json: incomplete)
CASES = {
    "ppo": (["algo.steps=3", "algo.checkpoint_every=2"], *OURS),  # checkpoints at 2 and at the end
    "rloo": (["algo.steps=3", "algo.checkpoint_every=2", "algo.kl.coef=0.1", "algo.batch_prompts=2"], *TRLS),
    "grpo": (["algo.steps=3", "algo.checkpoint_every=2", "algo.kl.coef=0.1", "algo.batch_prompts=2"], *TRLS),
    "bon-ft": (  # a checkpoint after every round; 8 prompts a round, 4 samples for the round's KL
        ["algo.rounds=3", "algo.epochs=1", "algo.prompts_per_round=8", "algo.round_kl_samples=4"],
        *OURS,
    ),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_resume_after_a_kill_is_the_uninterrupted_run(kind, small_model_dir, tmp_path, run_point_killed_at):
    overrides, complete, saved, partial = CASES[kind]
    cfg = tiny_cfg(small_model_dir, kind, *overrides)
    straight, log = run_direct(cfg, tmp_path / "straight")
    assert [s for s, _ in log] == list(range(1, LAST + 1))

    pdir = tmp_path / "point"
    ckpts = pdir / "checkpoints"
    row, logged = run_point_killed_at(cfg, pdir, kill_at=3)
    assert row is None and logged == [1, 2]
    assert (pdir / "error.json").is_file() and not (pdir / "result.json").exists()
    assert sorted(p.name for p in ckpts.glob(complete)) == [saved.format(2)]  # the last one only
    (ckpts / partial.format(3)).mkdir(exist_ok=True)  # a save cut short by the kill
    (ckpts / partial.format(3) / "model.safetensors").write_bytes(b"partial")

    row, logged = run_point_killed_at(cfg, pdir)
    assert logged == list(range(3, LAST + 1))  # resumed after step 2, did not restart from 0
    assert row["status"] == "done" and row[M.RESUMED_FROM] == 2
    assert row[M.TRAIN_STEPS] == straight.row[M.TRAIN_STEPS]  # bon-ft: optimizer steps carried in the checkpoint
    assert not (pdir / "error.json").exists()
    assert sorted(p.name for p in ckpts.glob(complete)) == [saved.format(LAST)]
    # same seed and prompt stream; weights, optimizer and RNG restored: the uninterrupted run's result
    assert row[M.KL] == pytest.approx(straight.row[M.KL], rel=1e-4, abs=1e-6)
    assert row[M.PROXY] == pytest.approx(straight.row[M.PROXY], rel=1e-4, abs=1e-6)

    # a finished point is not run again
    mtime = (pdir / "result.json").stat().st_mtime_ns
    again, logged = run_point_killed_at(cfg, pdir)
    assert logged == [] and again == json.loads((pdir / "result.json").read_text())
    assert (pdir / "result.json").stat().st_mtime_ns == mtime

    # cut off after the last checkpoint (during evaluation): the re-run loads it and takes no extra step
    again, log = run_direct(cfg, tmp_path / "straight")
    assert log == [] and again.row[M.RESUMED_FROM] == LAST
    assert again.row[M.TRAIN_STEPS] == straight.row[M.TRAIN_STEPS]
    assert again.row[M.KL] == pytest.approx(straight.row[M.KL], rel=1e-4, abs=1e-6)
