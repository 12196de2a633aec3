"""A sweep's worker processes never import MLflow: a worker records its point's child run
(sweeps/child_run.py: a pending file in the point directory) and the sweep's process logs it, the same run a
point logged live would be: name, parent, tags, params, final numbers, step history, artifacts.
A point run live (`--jobs 1`) is three calls to the store: create, one batch, end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from goodhart.pipeline.config.load import configs_dir, load_config

DIST = ["reward=distributional", "sampling.n=64", "prompts.n_eval=4", "eval.bootstrap=20", "algo.kl.coef=0.3"]

WORKER = r"""
import json, sys
from pathlib import Path
from goodhart.pipeline.config.load import load_config
from goodhart.pipeline.sweeps import local
from goodhart.pipeline.sweeps.child_run import DeferredTarget
cfg_path, point_dir, uri, exp, parent = sys.argv[1:]
cfg = load_config(Path(cfg_path), [])
d, err = local._worker(cfg.model_dump(mode="json"), point_dir, uri, exp, parent)
print(json.dumps({"err": err, "mlflow": sorted(m for m in sys.modules if m.split(".")[0] == "mlflow")}))
"""


def _store(where: Path):
    from goodhart.pipeline.sweeps.child_run import TrackingTarget
    from goodhart.pipeline.sweeps.tracking import Tracker, check_store

    uri = f"sqlite:///{where / 'mlflow.db'}"
    check_store(uri)
    tr = Tracker(uri)
    exp = tr.experiment_id("deferred")
    return TrackingTarget(tr, exp, tr.start_run(exp, "sweep-deferred"))


def _seen(client, run_id: str, root: Path) -> dict:
    """What a user sees of a child run (paths made relative to the point's sweep)."""
    r = client.get_run(run_id)
    skip = ("mlflow.user", "mlflow.source.name", "mlflow.source.type", "mlflow.source.git.commit")
    return {
        "name": r.info.run_name,
        "status": r.info.status,
        "tags": {k: v for k, v in r.data.tags.items() if k not in skip and k != "mlflow.runName"},
        "params": {k: v.replace(str(root), "ROOT") for k, v in r.data.params.items()},
        "metrics": {k: repr(v) for k, v in r.data.metrics.items() if k != "eval/seconds"},  # (nan == nan)
        "artifacts": sorted(a.path for a in client.list_artifacts(run_id)),
    }


def test_a_worker_imports_no_mlflow_and_its_point_is_logged_as_a_live_one(tmp_path):
    from mlflow import MlflowClient

    from goodhart.pipeline.config.load import to_yaml
    from goodhart.pipeline.sweeps.child_run import PENDING
    from goodhart.pipeline.sweeps.local import log_pending
    from goodhart.pipeline.sweeps.point import run_point

    target = _store(tmp_path)
    cfg = load_config(configs_dir() / "base.yaml", DIST)
    live_dir, worker_dir = tmp_path / "live" / "p", tmp_path / "worker" / "p"
    live = run_point(cfg, live_dir, target, progress=False)

    (tmp_path / "cfg.yaml").write_text(to_yaml(cfg))
    args = [str(tmp_path / "cfg.yaml"), str(worker_dir), target.tracker.uri, target.experiment_id, target.parent_id]
    out = subprocess.run([sys.executable, "-c", WORKER, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"err": None, "mlflow": []}  # the point ran, and nothing of mlflow was imported
    assert json.loads((worker_dir / "result.json").read_text())["mlflow_run_id"] is None  # not logged yet
    assert (worker_dir / PENDING).is_file()

    run_id = log_pending(target.tracker, worker_dir)  # what the sweep's process does
    assert run_id and not (worker_dir / PENDING).exists()
    assert json.loads((worker_dir / "result.json").read_text())["mlflow_run_id"] == run_id
    assert json.loads((worker_dir / "run.json").read_text())["run_id"] == run_id
    assert log_pending(target.tracker, worker_dir) is None  # logged once

    c = MlflowClient(target.tracker.uri)
    a, b = _seen(c, live["mlflow_run_id"], tmp_path / "live"), _seen(c, run_id, tmp_path / "worker")
    assert a == b
    assert a["tags"]["mlflow.parentRunId"] == target.parent_id and a["status"] == "FINISHED"
    assert len(a["params"]) > 50 and len(a["metrics"]) > 40 and a["artifacts"] == ["config.yaml"]
    w = c.get_run(run_id).info
    pending_times = w.start_time <= w.end_time and w.end_time - w.start_time < 300_000
    assert pending_times  # the worker's own start and end, not the moment of logging


def test_the_step_history_is_the_train_log_last_line_of_a_step_winning(tmp_path):
    """A resumed point's train_metrics.jsonl repeats steps (the last line wins, as in the report)
    and may end in a torn line; the logged history is exactly the file's."""
    from mlflow import MlflowClient

    from goodhart.pipeline.sweeps.child_run import DeferredTarget, PendingRun
    from goodhart.pipeline.sweeps.local import log_pending

    target = _store(tmp_path)
    d = tmp_path / "p"
    d.mkdir()
    (d / "result.json").write_text(json.dumps({"point_id": "p", "mlflow_run_id": None}))
    lines = [
        {"step": 1, "loss": 1.0, "kl": 0.1},
        {"step": 2, "loss": 0.9, "kl": 0.2},
        {"step": 2, "loss": 0.7, "kl": 0.25},  # resumed: step 2 again
        {"step": 3, "loss": 0.5, "kl": 0.3, "note": "text is not a metric"},
    ]
    (d / "train_metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 4, "lo')
    run = PendingRun(DeferredTarget(target.tracker.uri, target.experiment_id, target.parent_id), d, "p", {})
    run.params({"a": "1"})
    run.step({}, 3)
    run.done({"proxy": 2.5, "algo": "ppo"}, {"goodhart.flags": "x"}, {"note.txt": "hello"})
    run_id = log_pending(target.tracker, d)

    c = MlflowClient(target.tracker.uri)
    hist = {k: [(m.step, m.value) for m in c.get_metric_history(run_id, k)] for k in ("train/loss", "train/kl")}
    assert {k: sorted(v) for k, v in hist.items()} == {
        "train/loss": [(1, 1.0), (2, 0.7), (3, 0.5)],
        "train/kl": [(1, 0.1), (2, 0.25), (3, 0.3)],
    }
    r = c.get_run(run_id)
    assert r.data.params == {"a": "1"} and r.data.tags["goodhart.flags"] == "x"
    assert [(m.step, m.value) for m in c.get_metric_history(run_id, "eval/proxy")] == [(3, 2.5)]
    assert not any("note" in k or "algo" in k for k in r.data.metrics)
    assert [a.path for a in c.list_artifacts(run_id)] == ["note.txt"]


def test_a_failed_worker_point_is_logged_failed_with_its_params(tmp_path):
    from mlflow import MlflowClient

    from goodhart.pipeline.sweeps.child_run import DeferredTarget, PendingRun
    from goodhart.pipeline.sweeps.local import log_pending

    target = _store(tmp_path)
    d = tmp_path / "p"
    d.mkdir()
    run = PendingRun(DeferredTarget(target.tracker.uri, target.experiment_id, target.parent_id), d, "p", {})
    run.params({"a": "1"})
    run.stopped("FAILED", interrupted=False)
    (d / "error.json").write_text(json.dumps({"error": "boom", "mlflow_run_id": None}))
    run_id = log_pending(target.tracker, d)
    r = MlflowClient(target.tracker.uri).get_run(run_id)
    assert r.info.status == "FAILED" and r.data.params == {"a": "1"}
    assert json.loads((d / "error.json").read_text())["mlflow_run_id"] == run_id
    interrupted = tmp_path / "q"
    interrupted.mkdir()
    PendingRun(DeferredTarget("u", "0", None), interrupted, "q", {}).stopped("KILLED", interrupted=True)
    assert list(interrupted.iterdir()) == []  # pending, rerun next time: nothing to log


def test_a_live_point_is_three_calls_to_the_store(tmp_path, monkeypatch):
    """create, one log_batch (params, final numbers, tags), end; artifacts without reading the
    run back (before: five calls and a get_run)."""
    from mlflow import MlflowClient

    from goodhart.pipeline.sweeps.point import run_point

    target = _store(tmp_path)
    calls: list[str] = []
    for name in ("create_run", "log_batch", "set_terminated", "get_run", "log_artifacts", "update_run"):
        orig = getattr(MlflowClient, name)

        def counted(self, *a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(MlflowClient, name, counted)
    cfg = load_config(configs_dir() / "base.yaml", DIST)
    row = run_point(cfg, tmp_path / "p", target, progress=False)
    assert calls == ["create_run", "log_batch", "set_terminated"]
    monkeypatch.undo()
    r = MlflowClient(target.tracker.uri).get_run(row["mlflow_run_id"])
    assert r.info.status == "FINISHED" and len(r.data.params) > 50 and "eval/reward/proxy" in r.data.metrics


@pytest.mark.slow
def test_jobs_two_logs_what_jobs_one_logs(small_model_dir, tmp_path, monkeypatch):
    """The same small sweep (best-of-n and a 2-step PPO on the small model) with `--jobs 1` and
    `--jobs 2`: the same child runs (names, tags, params, metric names, step histories,
    artifacts); each PPO history is its point's train_metrics.jsonl."""
    from mlflow import MlflowClient
    from test_mlflow_readable import small_sweep

    from goodhart.eval import metrics as M
    from goodhart.pipeline.cli.main import main

    seen = {}
    for jobs in ("1", "2"):
        where = tmp_path / f"j{jobs}"
        where.mkdir()
        monkeypatch.chdir(where)
        f = small_sweep(where, small_model_dir)
        assert main(["sweep", str(f), "--quiet", "--jobs", jobs]) == 0
        root = where / "runs" / "readable"
        parent = json.loads((root / "parent.json").read_text())
        c = MlflowClient(parent["uri"])
        runs = c.search_runs([parent["experiment_id"]], f"tags.`mlflow.parentRunId` = '{parent['run_id']}'")
        assert not list(root.glob("points/*/mlflow_pending.json"))
        out = {}
        for r in runs:
            s = _seen(c, r.info.run_id, where)
            s["tags"].pop("mlflow.parentRunId")
            s["metrics"] = sorted(s["metrics"])
            hist = {
                k: [m.step for m in c.get_metric_history(r.info.run_id, k)]
                for k in s["metrics"]
                if k.startswith("train/")
            }
            d = root / "points" / r.data.tags["goodhart.point_id"]
            if (d / "train_metrics.jsonl").is_file():
                lines = [json.loads(x) for x in (d / "train_metrics.jsonl").read_text().splitlines()]
                assert hist and all(sorted(v) == [x["step"] for x in lines] for v in hist.values())
                names = {M.train_name(key): key for x in lines for key in x if key != "step"}
                for k in hist:  # each value as the point wrote it
                    h = sorted((m.step, m.value) for m in c.get_metric_history(r.info.run_id, k))
                    assert h == [(x["step"], pytest.approx(x[names[k]], nan_ok=True)) for x in lines]
            s["steps"] = hist
            out[s.pop("name")] = {k: v for k, v in s.items() if k != "params"} | {"params": sorted(s["params"])}
        seen[jobs] = out
    assert seen["1"] == seen["2"] and len(seen["1"]) == 3
