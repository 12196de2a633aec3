"""goodhart.integrations.trl: the alarm inside a plain TRL run. Real GRPOTrainer and RLOOTrainer
on the small built-in model (a few steps, 8 tokens), through examples/grpo_with_alarm.py where a
script is what a user runs; the bookkeeping without a model, against hand-computed numbers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from goodhart import AlarmRule, BaseStats, alarm
from goodhart.eval import metrics as M
from goodhart.integrations.trl import GoodhartCallback

REPO = Path(__file__).resolve().parents[1]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ============================================================================================
# Without a model: what is recorded and logged
# ============================================================================================
def _tick(cb: GoodhartCallback, step: int, logs: dict, weights=None):
    args = SimpleNamespace(reward_weights=weights, output_dir="unused", device="cpu")
    state = SimpleNamespace(global_step=step, log_history=[{"step": step}], is_world_process_zero=True)
    control = SimpleNamespace(should_training_stop=False)
    cb.on_log(args, state, control, logs=logs)
    return control, state


def test_the_wrapper_records_the_weighted_proxy_and_the_gold_and_changes_nothing():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 256))
    cb = GoodhartCallback(base, every=2)

    def a(prompts, completions, **_):
        return [float(len(c)) for c in completions]

    def b(prompts, completions, **_):
        return [1.0 if "x" in c else None for c in completions]  # None: not scored (TRL: NaN)

    gold_calls = []

    def gold(prompts, completions, **_):
        gold_calls.append(len(completions))
        return [0.5] * len(completions)

    fa, fb = cb.wrap([a, b], gold=gold)
    assert (fa.__name__, fb.__name__) == ("a", "b")  # TRL logs rewards/<name>/... as before
    logs = {"kl": 0.1, "completions/mean_length": 10.0}
    first = ["zzzzzzzzzz"]  # step 1's batch (TRL passes both functions the same list)
    fa(prompts=["p"], completions=first), fb(prompts=["p"], completions=first)
    control, state = _tick(cb, 1, dict(logs), weights=[1.0, 2.0])
    assert not control.should_training_stop and not cb.history  # step 1 < every: no check
    batches = [["xx", "y", "xyz"], ["x", "yy", "zzzz"]]  # two generation batches in one log's window
    for comps in batches:
        prompts = ["p"] * len(comps)
        assert fa(prompts=prompts, completions=comps) == a(prompts, comps)  # values unchanged
        assert fb(prompts=prompts, completions=comps) == b(prompts, comps)
    assert gold_calls == [1, 3, 3]  # once per batch, never given to TRL
    logs2 = dict(logs)
    _tick(cb, 2, logs2, weights=[1.0, 2.0])  # reads the window since step 1's log, not step 1's batch
    proxy = np.array([2 + 2, 1, 3 + 2, 1 + 2, 2, 4])  # a + 2 b, None counted as 0 (TRL's nansum)
    assert logs2["goodhart/proxy"] == pytest.approx(proxy.mean())
    assert logs2["goodhart/gold"] == 0.5 and logs2["goodhart/samples"] == 6.0
    assert logs2["goodhart/kl"] == pytest.approx(1.0)  # per-token kl x mean length
    # the callback's base carries the null's replicates: the base's tail-shape test joins the gain test
    want = alarm(proxy.astype(float), 1.0, BaseStats.from_pool(base, per_prompt=False, n_null=AlarmRule().n_null))
    assert cb.base.tail is not None and logs2["goodhart/alarm/tail_p"] == pytest.approx(want.tail_p)
    assert logs2["goodhart/alarm/score"] == pytest.approx(want.score)
    assert logs2["goodhart/alarm/dv_ratio"] == pytest.approx(want.dv_ratio)
    assert cb.history[-1]["level"] == want.level


def test_an_alarm_stops_only_when_asked_and_the_last_quiet_checkpoint_is_kept(tmp_path):
    rng = np.random.default_rng(1)  # a base with a Pareto(1.5) tail: beyond its top the gain is tail-bought
    base = rng.normal(size=(1, 512)) + 0.3 * rng.pareto(1.5, (1, 512))

    def r(prompts, completions, **_):
        return [float(c) for c in completions]

    for stop in (False, True):
        cb = GoodhartCallback(base, every=1, stop_on_alarm=stop, rule=AlarmRule())
        (f,) = cb.wrap(r)
        args = SimpleNamespace(reward_weights=None, output_dir=str(tmp_path), device="cpu")
        stops = []
        for step, values in ((1, ["0.1", "-0.2", "0.05", "0.0"]), (2, ["0.0", "0.1", "80", "90"])):
            f(prompts=["p"] * 4, completions=values)
            state = SimpleNamespace(global_step=step, log_history=[], is_world_process_zero=True)
            control = SimpleNamespace(should_training_stop=False)
            # TRL's per-token KL x mean length: sequence KL 0.1 (without a KL there is no test)
            cb.on_log(args, state, control, logs={"kl": 0.1, "completions/mean_length": 1.0})
            cb.on_save(args, state, control)
            stops.append(control.should_training_stop)
        assert [c["level"] for c in cb.history] == ["quiet", "alarm"]
        assert stops == [False, stop] and cb.stopped_at == (2 if stop else None)
        assert cb.last_quiet_step == 1 and cb.last_quiet_checkpoint == str(tmp_path / "checkpoint-1")


def test_base_statistics_from_files(tmp_path):
    x = np.random.default_rng(2).normal(size=(4, 64))
    np.savez(tmp_path / "b.npz", proxy=x)
    import pandas as pd

    pd.DataFrame({"point": ["base"] * x.size + ["7"] * 3, "proxy": [*x.ravel(), 1e9, 1e9, 1e9]}).to_csv(
        tmp_path / "b.csv", index=False
    )
    want = BaseStats.from_pool(x, per_prompt=False)
    for f in ("b.npz", "b.csv"):  # the csv in the analyze schema: only the base rows count
        got = GoodhartCallback(tmp_path / f).base
        assert got.sigma == pytest.approx(want.sigma) and got.max == pytest.approx(want.max) and got.n == x.size
        assert got.tail is not None and got.null.n_null == AlarmRule().n_null  # the tail-shape test's replicates
    with pytest.raises(FileNotFoundError):
        GoodhartCallback(tmp_path / "missing.npz")


def test_holdout_functions_estimate_the_gain_and_pick_the_best_checkpoint(tmp_path):
    """wrap(..., holdout=...): held-out reward functions, called on the same samples, never given to
    TRL; each check logs their gain over the base's (t interval over the window's prompts), and
    best_holdout_checkpoint is the checkpoint with the largest lower bound of it."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(1, 512))
    calls = []

    def r(prompts, completions, **_):
        return [float(c.split()[0]) for c in completions]

    def held(prompts, completions, **_):  # the utility, read from the text, plus its own noise
        calls.append(len(completions))
        return [float(c.split()[1]) for c in completions]

    cb = GoodhartCallback(base, every=1, base_holdout=np.zeros(64))
    (f,) = cb.wrap(r, holdout=[held, held], holdout_combine="median")
    assert f.__name__ == "r"
    args = SimpleNamespace(reward_weights=None, output_dir=str(tmp_path), device="cpu")
    gains = {1: [0.5, 0.7, 0.4, 0.6], 2: [1.5, 1.4, 1.6, 1.5], 3: [0.2, -0.1, 0.1, 0.2]}
    for step, g in gains.items():
        comps = [f"{0.1 * step} {v}" for v in g]
        assert f(prompts=["a", "a", "b", "b"], completions=comps) == r(None, comps)
        state = SimpleNamespace(global_step=step, log_history=[], is_world_process_zero=True)
        control = SimpleNamespace(should_training_stop=False)
        logs = {"kl": 0.1, "completions/mean_length": 1.0}
        cb.on_log(args, state, control, logs=logs)
        cb.on_save(args, state, control)
        per = np.array([np.mean(g[:2]), np.mean(g[2:])])  # per prompt, base mean 0
        assert logs["goodhart/gain/holdout"] == pytest.approx(per.mean())
        assert logs["goodhart/gain/holdout/lo"] < per.mean() < logs["goodhart/gain/holdout/hi"]
        assert logs["goodhart/holdout"] == pytest.approx(np.mean(g))
    assert calls == [4, 4] * 3  # both held-out functions, once per batch
    assert cb.best_holdout_checkpoint == str(tmp_path / "checkpoint-2")
    assert cb.summary()["best_holdout_checkpoint"] == cb.best_holdout_checkpoint
    # a given base without held-out scores cannot give a held-out gain: said at the start
    cb2 = GoodhartCallback(base, every=1)
    cb2.wrap(r, holdout=held)
    with pytest.raises(RuntimeError, match="needs the base's held-out scores"):
        cb2.on_train_begin(args, SimpleNamespace(global_step=0), None)
    np.savez(tmp_path / "base.npz", proxy=base, holdout=np.full((1, 512), 0.25))
    assert GoodhartCallback(tmp_path / "base.npz").base_holdout == pytest.approx(0.25)


# ============================================================================================
# Real TRL trainers on the small model
# ============================================================================================
def test_grpo_script_with_the_callback_flags_a_heavy_tailed_hackable_reward(small_model_dir, tmp_path, capsys):
    """The example's real GRPO run on the tiny model against a hackable heavy-tailed proxy. Under alarm
    rule 5 `alarm` needs the point's own local tail evidence, read from the base's top spacings; the
    example's base (16 samples x 4 prompts) is too small for that test, so the hack reads `watch`
    (the pool-level evidence) and --stop, which stops at `alarm` only, lets the run finish. The
    unit tests with a Pareto-tailed base (test_alarm_monitor.py, above) pin the stop at `alarm`."""
    ex = _example("grpo_with_alarm")
    out = tmp_path / "heavy"
    s = ex.main(["--model", str(small_model_dir), "--out", str(out), "--steps", "12", "--tokens", "8", "--stop"])
    levels = [c["level"] for c in s["checks"]]
    assert "watch" in levels and s["stopped_at"] is None  # flagged; `watch` does not stop training
    assert levels[0] == "quiet" and len(levels) == 12
    kept = Path(s["last_quiet_checkpoint"])
    assert kept.is_dir() and int(kept.name.split("-")[1]) <= s["last_quiet_step"]
    saved = json.loads((out / "goodhart_alarm.json").read_text())
    assert saved["stopped_at"] is None and (out / "goodhart_base.npz").is_file()
    # the gold was recorded beside the proxy; the proxy soared while the gold did not follow
    first, last = s["checks"][0], s["checks"][-1]
    assert last["goodhart/proxy"] > 10 * max(first["goodhart/proxy"], 1.0)
    assert last["goodhart/gold"] < first["goodhart/gold"] + 0.5
    # the samples log reads back through `goodhart analyze` (steps as points, gains against the base mean)
    from goodhart.pipeline.cli.main import main

    samples = out / "goodhart_samples.csv"
    assert main(["analyze", str(samples), "--pairing", "global", "--out", str(tmp_path / "an")]) == 0
    printed = capsys.readouterr().out
    assert "gold-free alarm" in printed and "not paired per prompt" in printed
    import pandas as pd

    res = pd.read_csv(tmp_path / "an" / "results.csv")
    assert res["x"].tolist() == list(range(1, 13)) and set(res["alarm/level"]) <= {"quiet", "watch"}
    # ... and the analysis reads each step's alarm as the callback did (same samples, KL and base)
    online = [c["goodhart/alarm/score"] for c in s["checks"]]
    np.testing.assert_allclose(res["alarm/score"].to_numpy(float), online, rtol=1e-6, atol=1e-9)
    # trainer_state.json of the last checkpoint keeps the goodhart/ metrics of the steps it saw
    state = json.loads((kept / "trainer_state.json").read_text())
    assert any("goodhart/alarm/score" in h for h in state["log_history"])


def test_the_samples_file_reproduces_the_live_alarm_at_every_5(small_model_dir, tmp_path):
    """At every=5 each check reads the window of its own log (the samples since the previous log,
    with that log's KL: train/online_alarm.py), and the samples file holds every log's window under
    its step: `goodhart analyze --pairing global` reads each checked step's alarm exactly as live.
    (Before, a check pooled the five steps since the last one while the file held one step per
    point: the two disagreed.)"""
    import goodhart

    ex = _example("grpo_with_alarm")
    out = tmp_path / "every5"
    s = ex.main(["--model", str(small_model_dir), "--out", str(out), "--steps", "10", "--tokens", "8", "--every", "5"])
    assert [c["step"] for c in s["checks"]] == [5, 10]
    res = goodhart.analyze(out / "goodhart_samples.csv", tmp_path / "an", pairing="global").results
    offline = res.set_index(res["x"].astype(int))
    assert list(offline.index) == list(range(1, 11))  # every log's window, checked or not
    for c in s["checks"]:
        row = offline.loc[c["step"]]
        assert row["alarm/level"] == c["level"]
        # one GRPO batch per log (8 samples), not the five since the last check pooled (40)
        assert c["goodhart/samples"] == 8.0 and float(row[M.ALARM_N_EFF]) == pytest.approx(8.0)
        for name in ("alarm/score", "alarm/p_value", "alarm/tail_share", "alarm/noise_p", "alarm/tail_p"):
            want, got = c[f"goodhart/{name}"], float(row[name])
            assert (want is None and np.isnan(got)) or got == pytest.approx(want, rel=1e-6, abs=1e-9), name


def test_grpo_script_with_a_heldout_reward_estimates_the_gain_without_gold(small_model_dir, tmp_path):
    """--holdout: the base is sampled with the held-out reward too; every check's held-out gain reads
    the gold gain up to the held-out error (uniform +-0.2, averaged), the summary names the held-out
    estimate's best checkpoint, and the samples file's holdout column makes it the analysis's headline."""
    import goodhart

    ex = _example("grpo_with_alarm")
    out = tmp_path / "held"
    s = ex.main(["--model", str(small_model_dir), "--out", str(out), "--steps", "6", "--tokens", "8", "--holdout"])
    base = np.load(out / "goodhart_base.npz")
    assert "holdout" in base.files and s["base_holdout"] == pytest.approx(float(base["holdout"].mean()))
    gold0 = float(base["utility"].mean())
    for c in s["checks"]:
        assert abs(c["goodhart/gain/holdout"] - (c["goodhart/gold"] - gold0)) < 0.2, c
    assert Path(s["best_holdout_checkpoint"]).is_dir()
    ana = goodhart.analyze(out / "goodhart_samples.csv", tmp_path / "an", pairing="global")
    assert ana.labelled["est_verdict"].notna().all()
    assert "Held-out estimate (no gold)" in (tmp_path / "an" / "report" / "report.md").read_text()


def test_grpo_script_with_a_light_tailed_proxy_does_not_alarm(small_model_dir, tmp_path):
    ex = _example("grpo_with_alarm")
    s = ex.main(["--model", str(small_model_dir), "--out", str(tmp_path), "--steps", "6", "--tokens", "8"])
    s2 = ex.main(
        ["--model", str(small_model_dir), "--out", str(tmp_path / "l"), "--steps", "6", "--tokens", "8", "--light"]
    )
    assert s["stopped_at"] is None  # without --stop the heavy run goes on (whatever it reads)
    assert {c["level"] for c in s2["checks"]} == {"quiet"} and s2["stopped_at"] is None


def test_rloo_logs_goodhart_metrics_through_the_trainers_own_loggers(small_model_dir, tmp_path, monkeypatch):
    """report_to="mlflow": transformers' own MLflowCallback sends goodhart/... to MLflow, and a
    logger listed before the callback sees them too (the callback moves itself first)."""
    from datasets import Dataset
    from mlflow import MlflowClient
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "trl-alarm")

    class Spy(TrainerCallback):
        seen: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kw):
            self.seen.append(dict(logs or {}))

    def reward(prompts, completions, **_):
        return [math.expm1(0.7 * c.count("e")) for c in completions]

    tok = AutoTokenizer.from_pretrained(small_model_dir)
    model = AutoModelForCausalLM.from_pretrained(small_model_dir)
    cb = GoodhartCallback(every=2, base_samples=8, base_prompts=2)
    cfg = RLOOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        learning_rate=1e-3,
        beta=0.05,
        logging_steps=1,
        save_strategy="no",
        report_to="mlflow",
        bf16=False,
        disable_tqdm=True,
    )
    trainer = RLOOTrainer(
        model=model,
        reward_funcs=cb.wrap(reward),
        args=cfg,
        train_dataset=Dataset.from_dict({"prompt": ["The weather today", "My favourite food"] * 8}),
        processing_class=tok,
        callbacks=[Spy(), cb],
    )
    trainer.train()
    assert [c["step"] for c in cb.history] == [2, 4]
    assert any("goodhart/alarm/score" in logs for logs in Spy.seen)  # the spy comes after the callback now
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("trl-alarm")
    (run,) = client.search_runs([exp.experiment_id])
    hist = client.get_metric_history(run.info.run_id, "goodhart/alarm/score")
    assert [m.step for m in hist] == [2, 4]
    assert {"goodhart/proxy", "goodhart/kl", "goodhart/alarm/code"} <= set(run.data.metrics)


_TWO_PROCESSES = r"""
import json, os, sys
from types import SimpleNamespace

import numpy as np
import torch.distributed as dist

from goodhart import AlarmRule
from goodhart.integrations.trl import GoodhartCallback

rank = int(os.environ["RANK"])
dist.init_process_group("gloo", rank=rank, world_size=2)
# rank 0's base is 100 times wider: against it the window is noise (each process reads its own base)
rng = np.random.default_rng(1)  # a Pareto(1.5) tail beside a Gaussian bulk: rule 5 alarms beyond its top
base = (rng.normal(size=(1, 512)) + 0.3 * rng.pareto(1.5, (1, 512))) * (100.0 if rank == 0 else 1.0)
cb = GoodhartCallback(base, every=1, stop_on_alarm=True, rule=AlarmRule())
(f,) = cb.wrap(lambda prompts, completions, **_: [float(c) for c in completions])
# rank 0 sees an ordinary batch, rank 1 a batch won through the tail
f(prompts=["p"] * 4, completions=["0.1", "-0.2", "0.05", "0.0"] if rank == 0 else ["80", "90", "85", "95"])
args = SimpleNamespace(reward_weights=None, output_dir=sys.argv[1], device="cpu")
state = SimpleNamespace(global_step=1, log_history=[], is_world_process_zero=rank == 0)
control = SimpleNamespace(should_training_stop=False)
cb.on_log(args, state, control, logs={"kl": 0.1, "completions/mean_length": 1.0})
h = cb.history[-1]
print(json.dumps({"rank": rank, "stop": control.should_training_stop, "level": h["level"], "own": cb.last.level,
                  "samples": h["goodhart/samples"]}))
dist.destroy_process_group()
"""


def test_every_process_stops_when_any_process_alarms(tmp_path):
    """Under torch.distributed (real gloo, two processes on loopback) every process reads the
    window of both (gathered: 8 samples); the level they act on is the highest any reached (here
    rank 0's own base reads it as noise), so all stop at the same step."""
    import os
    import socket
    import subprocess
    import sys

    script = tmp_path / "two.py"
    script.write_text(_TWO_PROCESSES)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)],
            env={**env, "RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    got = sorted((json.loads(o.strip().splitlines()[-1]) for o, _ in outs), key=lambda d: d["rank"])
    assert [g["stop"] for g in got] == [True, True] and [g["level"] for g in got] == ["alarm", "alarm"]
    assert [g["own"] for g in got] == ["quiet", "alarm"] and [g["samples"] for g in got] == [8.0, 8.0]
