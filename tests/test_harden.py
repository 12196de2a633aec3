"""Regression tests for issue 11 ("nothing lost, nothing stale, nothing silent"), one or more
per finding; the process-level ones (signals, kill -9, concurrent runners) are in
tests/test_interrupts.py, the random-mutation suite in tests/test_fuzz_inputs.py."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir, load_config

DIST = {"reward": "distributional", "sampling.n": 64, "prompts.n_eval": 4, "eval.bootstrap": 20}


def write_sweep(where: Path, name: str = "h", **body) -> Path:
    spec = {"name": name, "base": str(configs_dir() / "base.yaml"), "set": DIST, **body}
    p = where / f"{name}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def one_line_error(capsys, code: int, expect: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("goodhart: error:"), err
    assert expect in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# 2. A truncated or non-finite result.json is not "done": it is rerun, with a notice
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "nan", "text"])
def test_a_broken_result_is_rerun_with_a_notice_and_status_agrees(in_tmp, capsys, damage):
    f = write_sweep(in_tmp, grid={"algo.kl.coef": [1.0, 2.0]})
    assert main(["sweep", str(f), "--quiet"]) == 0
    root = in_tmp / "runs" / "h"
    victim = sorted(root.glob("points/*/result.json"))[0]
    good = victim.read_text()
    if damage == "truncate":
        victim.write_text(good[: len(good) // 2])
    elif damage == "nan":
        victim.write_text(json.dumps({**json.loads(good), "kl": float("nan")}))
    else:
        victim.write_text("not json at all")
    capsys.readouterr()
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "invalid" in out and "done: 1" in out
    assert main(["sweep", str(f), "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "1 run, 1 already done" in cap.out
    notices = [x for x in cap.err.splitlines() if "notice" in x]
    assert len(notices) == 1 and victim.parent.name in notices[0] and "running it again" in notices[0]
    assert "Traceback" not in cap.err
    row = json.loads(victim.read_text())
    assert math.isfinite(row["kl"])
    assert main(["status", str(root)]) == 0 and "done: 2" in capsys.readouterr().out
    # Still one parent run, closed FINISHED (no new parent left RUNNING per rerun).
    from mlflow import MlflowClient

    c = MlflowClient(f"sqlite:///{in_tmp / 'mlflow.db'}")
    rs = c.search_runs([c.get_experiment_by_name("h").experiment_id])
    parents = [r for r in rs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.status for p in parents] == ["FINISHED"]


def test_report_rebuilds_the_table_instead_of_reading_a_stale_one(in_tmp, capsys):
    f = write_sweep(in_tmp, grid={"algo.kl.coef": [1.0, 2.0]}, config={"tracking": {"enabled": False}})
    assert main(["sweep", str(f), "--quiet"]) == 0
    root = in_tmp / "runs" / "h"
    for r in root.glob("points/*/result.json"):
        r.write_text(r.read_text()[:20])  # every result broken; results.csv still says done
    capsys.readouterr()
    assert main(["report", str(root), "--no-mlflow"]) == 2
    assert "no finished points" in capsys.readouterr().err
    assert set(pd.read_csv(root / "results.csv")["status"]) == {"invalid"}


# ---------------------------------------------------------------------------------------------
# 3. Non-finite numbers: configs, rewards, estimators
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override",
    ["reward.error.loc=.nan", "reward.error.loc=.inf", "reward.error.scale=.inf", "reward.utility.loc=-.inf"],
)
def test_non_finite_law_parameters_are_config_errors(override, capsys):
    code = main(["config", "show", "reward=distributional", override])
    one_line_error(capsys, code, override.split("=")[0])


def test_a_distributional_law_that_overflows_stops_naming_the_reward(in_tmp, capsys):
    code = main(
        ["run", str(configs_dir() / "base.yaml"), *(f"{k}={v}" for k, v in DIST.items())]
        + ["reward.error=pareto(scale=1e300)", "tracking.enabled=false", "--quiet"]
    )
    assert code == 1
    err = json.loads(next((in_tmp / "runs" / "run" / "points").glob("*/error.json")).read_text())["error"]
    assert "RewardError" in err and "distributional error pareto(alpha=1.5) x1e+300" in err and "1e+150" in err


def big_reward(prompts, completions):
    return [1e308 if i % 2 else -1e308 for i in range(len(completions))]


def test_a_callable_returning_huge_scores_is_stopped_naming_it(monkeypatch):
    from goodhart.pipeline.base.scoring import Scorer
    from goodhart.rewards.base import RewardError

    monkeypatch.setitem(sys.modules, "hardening_rewards", sys.modules[__name__])
    cfg = load_config(None, ["reward.type=callable", "reward.target=hardening_rewards:big_reward", "utility=same"])
    with pytest.raises(RewardError, match=r"reward 'big_reward' returned .*1e\+308.*rescale"):
        Scorer(cfg).components(["p"] * 4, ["a", "b", "c", "d"])


def test_tilt_weights_do_not_overflow_for_huge_rewards_and_small_beta():
    from goodhart.eval.tilt import kl_from_log_weights, log_weights, tilt

    r = np.array([[1e308, -1e308, 0.0, 5e307]])  # r / beta overflows to inf: NaN weights before
    logw = log_weights(r, 0.5)
    assert np.all(np.isfinite(np.exp(logw)))
    assert np.exp(logw[0, 0]) == pytest.approx(1.0)  # a point mass on the largest reward
    assert kl_from_log_weights(logw)[0] == pytest.approx(math.log(4))  # exact: log N for a point mass
    est = tilt(r, 0.5, utility=np.array([[1.0, 2.0, 3.0, 4.0]]))
    assert est["utility"][0] == pytest.approx(1.0) and est["proxy"][0] == pytest.approx(1e308)
    # ordinary values: unchanged (softmax of r / beta, compared with the textbook formula)
    r2 = np.array([[0.3, -1.2, 2.0]])
    w = np.exp(r2 / 0.7) / np.exp(r2 / 0.7).sum()
    assert np.allclose(np.exp(log_weights(r2, 0.7)), w)


# ---------------------------------------------------------------------------------------------
# 5. Cache keys are what the reward is
# ---------------------------------------------------------------------------------------------
def test_callable_identity_follows_its_source_or_explicit_version(tmp_path, monkeypatch):
    from goodhart.rewards.plugins import callable_identity

    monkeypatch.syspath_prepend(str(tmp_path))
    # Rewritten within a second at the same size, a module's cached bytecode (validated by mtime in
    # seconds and size) would be imported instead of the new source: no bytecode here.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    mod = tmp_path / "flipme.py"

    def write(sign: str, version: str | None = None) -> str:
        extra = f"score.version = {version!r}\n" if version else ""
        mod.write_text(f"def score(prompts, completions):\n    return [{sign}1.0 for _ in completions]\n{extra}")
        sys.modules.pop("flipme", None)
        return callable_identity("flipme:score")

    plus, minus = write(""), write("-")
    assert plus != minus and write("") == plus  # the sign flip changes the key; same source, same key
    assert write("", "2") == write("-", "2") != write("-", "3")  # an explicit version wins


def test_hf_checkpoint_identity_follows_its_weights(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from goodhart.rewards.plugins import checkpoint_identity

    cfg = LlamaConfig(
        vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, num_labels=1
    )
    d = tmp_path / "rm"
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(d)
    first = checkpoint_identity(str(d))
    assert checkpoint_identity(str(d)) == first
    torch.manual_seed(1)
    LlamaForSequenceClassification(cfg).save_pretrained(d)  # same path, new weights
    assert checkpoint_identity(str(d)) != first


def test_flipping_a_callable_rewards_sign_rescores_the_pool(tmp_path, monkeypatch, small_model_dir):
    """End to end: the pool cache must not hand back the old scores after the reward changed."""
    from goodhart.pipeline.base.pool import base_pool
    from goodhart.pipeline.base.prompts import load_prompts

    monkeypatch.syspath_prepend(str(tmp_path))
    mod = tmp_path / "signed.py"
    over = [
        f"model.path={small_model_dir}",
        "reward.type=callable",
        "reward.target=signed:score",
        "utility=same",
        "sampling.n=3",
        "sampling.max_new_tokens=4",
        "prompts.n_eval=2",
        "prompts.n_train=2",
        "clip.high=0.5",
    ]
    cfg = load_config(None, over)
    train, ev = load_prompts(cfg.prompts)
    pools = []
    for sign in ("", "-"):
        mod.write_text(f"def score(prompts, completions):\n    return [{sign}(1.0 + len(c)) for c in completions]\n")
        sys.modules.pop("signed", None)
        pools.append(base_pool(cfg, ev, train, progress=False))
    assert pools[0].key != pools[1].key
    assert np.all(pools[0].utility == -pools[1].utility)
    # clipping is counted: every positive score exceeds 0.5, no negative one does
    assert pools[0].clipped_fraction == 1.0 and pools[1].clipped_fraction == 0.0


# ---------------------------------------------------------------------------------------------
# 6/7. Tracking store: fail fast, one line
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "uri,expect",
    [
        ("http://127.0.0.1:9", "is not reachable"),
        ("garbage://x", "cannot be used"),
        ("sqlite:////no/such/dir/m.db", "does not exist"),
    ],
)
def test_an_unusable_tracking_store_is_one_line_before_any_compute(in_tmp, capsys, uri, expect):
    t0 = time.monotonic()
    code = main(
        [
            "run",
            str(configs_dir() / "base.yaml"),
            *(f"{k}={v}" for k, v in DIST.items()),
            f"tracking.uri={uri}",
            "--quiet",
        ]
    )
    assert time.monotonic() - t0 < 15
    one_line_error(capsys, code, expect)
    assert not list(in_tmp.rglob("result.json")) and not list(in_tmp.rglob("error.json"))


def test_report_on_a_missing_directory_creates_no_store(in_tmp, capsys):
    code = main(["report", "no-such-sweep"])
    one_line_error(capsys, code, "no-such-sweep")
    assert not (in_tmp / "mlflow.db").exists()


# ---------------------------------------------------------------------------------------------
# 6/10. Ordinary mistakes are one line
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override,expect",
    [
        ("name=my run", "name = 'my run'"),
        ("name=../../x", "name = '../../x'"),
        ("name=..", "name = '..'"),
        ("name=.", "name = '.'"),
        ("seed=-1", "seed = -1"),
        ("sampling.n=true", "expected a number, got a boolean"),
        ("clip={low: 1, high: -1}", "low=1 must be below high=-1"),
    ],
)
def test_bad_values_are_one_line_errors(in_tmp, capsys, override, expect):
    code = main(["run", str(configs_dir() / "base.yaml"), "reward=distributional", override, "--quiet"])
    one_line_error(capsys, code, expect)
    assert not (in_tmp / "runs").exists() and not (in_tmp.parent / "x").exists()


@pytest.mark.parametrize("name", [".", "..", "a b", "../x", "-x"])
def test_sweep_names_that_are_not_one_directory_are_refused(in_tmp, capsys, name):
    f = write_sweep(in_tmp, name="ok")
    f.write_text(f.read_text().replace("name: ok", f"name: '{name}'"))
    code = main(["sweep", str(f), "--output", str(in_tmp / "out"), "--quiet"])
    one_line_error(capsys, code, "name")
    assert not (in_tmp / "out").exists()


def test_an_output_directory_that_is_a_file_is_one_line(in_tmp, capsys):
    (in_tmp / "taken").write_text("a file")
    f = write_sweep(in_tmp)
    code = main(["sweep", str(f), "--output", str(in_tmp / "taken"), "--quiet"])
    one_line_error(capsys, code, "is not a directory")


@pytest.mark.parametrize(
    "argv,expect", [(["ui", "--port", "70000"], "1..65535"), (["server", "--port", "0"], "1..65535")]
)
def test_bad_ports_are_refused_by_the_parser(argv, expect, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and expect in capsys.readouterr().err


@pytest.mark.parametrize("jobs", ["0", "-2", "x"])
def test_jobs_must_be_positive(in_tmp, capsys, jobs):
    f = write_sweep(in_tmp)
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(f), "--jobs", jobs, "--quiet"])
    assert e.value.code == 2 and "--jobs" in capsys.readouterr().err
    assert not (in_tmp / "runs").exists()


def _npy(path: Path, arr) -> Path:
    np.save(path, arr, allow_pickle=True)
    return path


@pytest.mark.parametrize(
    "make,expect",
    [
        (lambda p: _npy(p, np.r_[np.random.default_rng(0).normal(size=600), np.nan]), "NaN or infinite"),
        (lambda p: _npy(p, np.r_[np.random.default_rng(0).normal(size=600), np.inf]), "NaN or infinite"),
        (lambda p: _npy(p, np.random.default_rng(0).normal(size=100)), "at least 500"),
        (lambda p: _npy(p, np.array(["a", "b"] * 400)), "expected numbers"),
        (lambda p: _npy(p, np.array([object(), 1.0] * 400, dtype=object)), "cannot read"),
        (lambda p: _npy(p, np.random.default_rng(0).normal(size=(600, 2))), "1-D"),
    ],
)
def test_tails_on_bad_data_is_one_line(tmp_path, capsys, make, expect):
    f = make(tmp_path / "x.npy")
    one_line_error(capsys, main(["tails", str(f)]), expect)


def test_files_follow_the_umask(tmp_path):
    from goodhart.pipeline.io import atomic_write_json

    old = os.umask(0o027)
    try:
        p = atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640  # group-readable, as a plain open() would make it


def test_cuda_without_a_device_is_one_line(monkeypatch):
    import torch

    from goodhart.pipeline.base.models import resolve_device
    from goodhart.pipeline.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda:1")


# ---------------------------------------------------------------------------------------------
# 8/10. SLURM: a failing squeue is "unknown"; abbreviations of reserved options
# ---------------------------------------------------------------------------------------------
def test_a_failing_squeue_makes_points_unknown_not_lost(tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(
        "#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n"
    )
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    root = tmp_path / "s"
    for pid in ("p0", "p1"):
        (root / "points" / pid).mkdir(parents=True)
    (root / "points" / "p1" / "result.json").write_text(
        json.dumps(
            {
                "point_id": "p1",
                "status": "done",
                "reward/proxy": 1,
                "reward/utility": 1,
                "gain/proxy": 0,
                "gain/utility": 0,
                "kl": 0,
                "x": 1,
                "algo": "tilt",
                "error_law": "gaussian x1",
                "x_name": "beta",
            }
        )
    )
    (root / "points.json").write_text(json.dumps([{"index": i, "id": f"p{i}", "overrides": {}} for i in range(2)]))
    (root / "slurm_jobs.json").write_text(
        json.dumps([{"job_id": "42", "array": "0-1", "points": {"0": "p0", "1": "p1"}}])
    )
    (root / "parent.json").write_text(
        json.dumps({"uri": f"sqlite:///{tmp_path / 'nowhere.db'}", "experiment_id": "1", "run_id": "r"})
    )
    assert main(["status", str(root)]) == 0
    cap = capsys.readouterr()
    assert "unknown: 1" in cap.out and "done: 1" in cap.out and "lost" not in cap.out + cap.err
    assert "Unable to contact slurm controller" in cap.err
    assert "closed" not in cap.out and "resubmit" not in cap.out

    from goodhart.pipeline.cluster.submit import plan
    from goodhart.pipeline.errors import SlurmError
    from goodhart.pipeline.sweeps.spec import expand, load_sweep

    f = write_sweep(tmp_path, name="s")
    sweep, base = load_sweep(f)
    with pytest.raises(SlurmError, match="cannot tell which tasks .* still queued or running"):
        plan(sweep, expand(sweep, base), root, f, {"allow_sqlite": True}, resume=True)


@pytest.mark.parametrize("extra", ["--arr=0-3", "--outp=/tmp/x", "--err=/tmp/y", "--exp=ALL", "--par"])
def test_abbreviated_reserved_sbatch_options_are_refused(in_tmp, capsys, extra):
    f = write_sweep(in_tmp, name="ab", slurm={"extra_args": [extra], "allow_sqlite": True})
    code = main(["sweep", str(f), "--backend", "slurm", "--dry-run"])
    one_line_error(capsys, code, "is set by goodhart itself")


def test_legitimate_sbatch_options_still_pass():
    from goodhart.pipeline.config.slurm import SlurmConfig

    ok = ["--constraint=a100", "--exclusive", "--partition=gpu", "--mem=4G", "--array-x"]
    assert SlurmConfig(extra_args=ok[:4]).extra_args == ok[:4]


# ---------------------------------------------------------------------------------------------
# 4/9. The sweep lock and run-state reconciliation (in-process parts)
# ---------------------------------------------------------------------------------------------
def test_a_held_sweep_directory_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path, capsys):
    import subprocess

    from goodhart.pipeline.errors import SweepBusyError
    from goodhart.pipeline.sweeps.lock import LOCK, SweepLock

    root = tmp_path / "sw"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from goodhart.pipeline.sweeps.lock import SweepLock; import time; SweepLock({str(root)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(SweepBusyError, match=rf"in use by another goodhart run \(pid {holder.pid} on "):
        SweepLock(root).acquire()
    holder.kill()
    holder.wait()
    with SweepLock(root):  # the kernel dropped the dead holder's lock: taken over, with a notice
        assert json.loads((root / LOCK).read_text())["pid"] == os.getpid()
    assert f"taking over the lock of pid {holder.pid}" in capsys.readouterr().err


def test_a_rerun_closes_orphan_child_runs_and_continues_the_points_own(in_tmp, capsys):
    """A dead invocation left its parent and two children RUNNING: one child named by its point's
    run.json (continued by the rerun), one named by nothing (closed KILLED)."""
    from mlflow import MlflowClient

    from goodhart.pipeline.sweeps.point import run_point
    from goodhart.pipeline.sweeps.record import reopen_or_start_parent
    from goodhart.pipeline.sweeps.runstate import RUN_FILE
    from goodhart.pipeline.sweeps.spec import expand, load_sweep

    f = write_sweep(in_tmp, grid={"algo.kl.coef": [1.0, 2.0]})
    sweep, base = load_sweep(f)
    points = expand(sweep, base)
    root = in_tmp / "runs" / "h"
    uri = f"sqlite:///{in_tmp / 'mlflow.db'}"
    from goodhart.pipeline.sweeps.record import write_sweep_dir

    write_sweep_dir(root, f, sweep, points)
    target, _ = reopen_or_start_parent(sweep, points, root, uri)
    claimed = target.tracker.start_run(target.experiment_id, "claimed", target.parent_id)
    (root / "points" / points[0].id / RUN_FILE).write_text(
        json.dumps({"uri": uri, "parent_id": target.parent_id, "run_id": claimed})
    )
    orphan = target.tracker.start_run(target.experiment_id, "orphan", target.parent_id)
    # ... the invocation dies here. The rerun:
    assert main(["sweep", str(f), "--quiet"]) == 0
    assert "closed 1 MLflow child run(s)" in capsys.readouterr().err
    c = MlflowClient(uri)
    assert c.get_run(orphan).info.status == "KILLED"
    assert c.get_run(claimed).info.status == "FINISHED"
    assert json.loads((root / "points" / points[0].id / "result.json").read_text())["mlflow_run_id"] == claimed
    assert run_point(points[0].cfg, root / "points" / points[0].id)["mlflow_run_id"] == claimed  # done: skipped


def test_a_mitigated_proxy_records_its_transform_and_ensemble_in_the_result_row():
    """reward/transform, reward/transform_ref, ensemble/k and ensemble/combine (eval/metrics.py)
    are columns of a mitigated point's row: the transform's anchor is the base quantile it was
    fitted at (here the 0.9 quantile of the min-of-3 base proxy), and a plain proxy has none."""
    import numpy as np

    from goodhart.eval import metrics as M
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.config.schema import RunConfig
    from goodhart.pipeline.sweeps.curves import mitigation_columns
    from goodhart.rewards.ensemble import combine

    reward = {"type": "distributional", "error": "pareto", "ensemble": {"k": 3, "combine": "min"}}
    base = {"algo": {"kind": "bon", "n": 4}, "sampling": {"n": 512}, "prompts": {"n_eval": 4}}
    cfg = RunConfig.model_validate({**base, "reward": {**reward, "transform": "clip(quantile=0.9)"}})
    pool = PointContext(cfg, Path(".")).pool()
    cols = mitigation_columns(cfg, pool)
    assert {k: cols[k] for k in (M.ENSEMBLE_K, M.ENSEMBLE_COMBINE, M.REWARD_TRANSFORM)} == {
        M.ENSEMBLE_K: 3,
        M.ENSEMBLE_COMBINE: "min",
        M.REWARD_TRANSFORM: "clip(q=0.9)",
    }
    assert cols[M.REWARD_TRANSFORM_REF] == np.quantile(combine(pool.members, "min", 1.0), 0.9)
    assert mitigation_columns(RunConfig.model_validate({**base, "reward": {"type": "distributional"}})) == {}


def test_ui_prints_a_runs_table_link_per_experiment(tmp_path):
    """MLflow 3.17 opens an experiment on its GenAI page: `goodhart ui` / `server` print each
    experiment's runs table, #/experiments/<id>/runs, newest first (Default left out)."""
    from goodhart.pipeline.cluster.server import public_uri, runs_links
    from goodhart.pipeline.sweeps.tracking import Tracker, check_store

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    check_store(store)
    t = Tracker(store)
    ids = [t.experiment_id(name) for name in ("first", "second")]
    links = runs_links(store, public_uri("127.0.0.1", 5000))
    assert links == [
        f"runs of 'second': http://127.0.0.1:5000/#/experiments/{ids[1]}/runs",
        f"runs of 'first': http://127.0.0.1:5000/#/experiments/{ids[0]}/runs",
    ]
    assert public_uri("::1", 5000) == "http://[::1]:5000"
    missing = tmp_path / "no" / "mlflow.db"
    assert runs_links(f"sqlite:///{missing}", "http://x") == [] and not missing.parent.exists()  # nothing created
