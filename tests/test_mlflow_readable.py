"""MLflow reads like the study: run names say what a point is, the knob and group are params and
tags, final numbers (eval/, equal to results.csv) stay apart from per-step curves (train/),
completions are tables, and after `goodhart report` every child carries its verdict.
Read back through MlflowClient from a real sweep on the small built-in model."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from browser import CHROMIUM

from goodhart.eval import metrics as M
from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.sweeps.labels import knob_label, run_name

SMALL = {
    "prompts.n_train": 32,
    "prompts.n_eval": 4,
    "sampling.n": 128,  # 4 x 128 base samples: the report's tail estimators want >= 500
    "sampling.max_new_tokens": 8,
    "eval.bootstrap": 20,
    "eval.n_examples": 2,
}
PPO = {
    "algo": "ppo",
    "algo.steps": 2,
    "algo.batch_prompts": 2,
    "algo.samples_per_prompt": 4,
    "algo.minibatch": 8,
    "algo.eval_samples": 2,
}


def small_sweep(root: Path, model_dir: Path) -> Path:
    spec = {
        "name": "readable",
        "base": str(configs_dir() / "base.yaml"),
        "set": {"model.name": "path", "model.path": str(model_dir), "reward": "pareto", **SMALL},
        "branches": [
            {"set": {"algo": "bon"}, "grid": {"algo.n": [1, 4]}},
            {"set": PPO, "grid": {"algo.kl.coef": [0.03]}},
        ],
    }
    f = root / "readable.yaml"
    f.write_text(yaml.safe_dump(spec))
    return f


def test_knob_and_run_name_words():
    assert knob_label("n", 64.0) == "n=64"
    assert knob_label("beta", 0.03) == "kl.coef=0.03"
    assert knob_label("kl_target", 2.0) == "kl.target=2"
    assert run_name("bon", "n", 64, "pareto(1.5) x0.3") == "bon n=64 · pareto(1.5) x0.3"


@pytest.fixture()
def readable_sweep(small_model_dir, in_tmp, capsys):
    f = small_sweep(in_tmp, small_model_dir)
    assert main(["sweep", str(f), "--quiet"]) == 0
    capsys.readouterr()
    return in_tmp / "runs" / "readable"


def test_mlflow_store_reads_like_the_study(readable_sweep, capsys):
    from mlflow import MlflowClient

    root = readable_sweep
    parent = json.loads((root / "parent.json").read_text())
    client = MlflowClient(parent["uri"])
    children = client.search_runs(
        [parent["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{parent['run_id']}'"
    )
    df = pd.read_csv(root / "results.csv")
    assert len(children) == len(df) == 3
    by_id = {r.info.run_id: r for r in children}

    for _, row in df.iterrows():
        run = by_id[row["mlflow_run_id"]]
        tags, params = run.data.tags, run.data.params
        # names say algorithm, knob and error; knob and group are tags and params
        assert run.info.run_name == run_name(row["algo"], row["x_name"], row["x"], row["error_law"])
        assert re.fullmatch(r"(bon n=\d+|ppo kl\.coef=0\.03) · pareto\(.*\) x\S+", run.info.run_name)
        assert tags["goodhart.x_name"] == params["x_name"] == row["x_name"]
        assert float(tags["goodhart.x"]) == float(params["x"]) == row["x"]
        assert tags["goodhart.group"] == params["group"] == f"{row['error_law']} / {row['algo']}"
        # every metric sits in one namespace; the eval/ ones are the result row
        assert all(k.startswith((M.EVAL_NS, M.TRAIN_NS)) for k in run.data.metrics), sorted(run.data.metrics)
        for name in (M.KL, M.PROXY, M.UTILITY, M.GAIN_UTILITY):
            assert run.data.metrics[M.eval_name(name)] == pytest.approx(row[name], rel=1e-12, abs=1e-12)
        # completions: a table MLflow renders (columns + data), not JSON lines
        table_path = client.download_artifacts(run.info.run_id, "completions.json")
        table = json.loads(Path(table_path).read_text())
        assert table["columns"][:5] == ["prompt", "completion", "proxy", "utility", "error"]
        assert len(table["data"]) == 2
        p, u, e = table["data"][0][2:5]
        assert e == pytest.approx(p - u)
        # ...listed as a table, as log_table lists it: the UI shows it, load_table reads it
        assert json.loads(tags["mlflow.loggedArtifacts"]) == [{"path": "completions.json", "type": "table"}]
        loaded = client.load_table(parent["experiment_id"], "completions.json", run_ids=[run.info.run_id])
        assert list(loaded.columns[:5]) == table["columns"][:5] and len(loaded) == 2

    [ppo] = [by_id[i] for i in df[df["algo"] == "ppo"]["mlflow_run_id"]]
    [ppo_row] = df[df["algo"] == "ppo"].to_dict("records")
    rid = ppo.info.run_id
    for name in (M.KL, M.PROXY, M.UTILITY):  # PPO's final numbers: results.csv's, at the last step, not at 0
        hist = client.get_metric_history(rid, M.eval_name(name))
        assert [h.step for h in hist] == [2] and hist[0].value == pytest.approx(ppo_row[name], rel=1e-12)
        assert sorted(h.step for h in client.get_metric_history(rid, M.train_name(name))) == [1, 2]
    assert M.LOSS_POLICY in ppo.data.metrics and "train/train/loss/policy" not in ppo.data.metrics

    # before the report: no verdict on children; after it, on every child
    assert not any("goodhart.verdict" in r.data.tags for r in children)
    assert main(["report", str(root)]) == 0
    capsys.readouterr()
    labelled = pd.read_csv(root / "report" / "verdicts.csv")
    for r in labelled.to_dict("records"):
        tags = client.get_run(r["mlflow_run_id"]).data.tags
        assert tags["goodhart.verdict"] == r["verdict"] and tags["goodhart.sweep_verdict"]
    parent_arts = {a.path for a in client.list_artifacts(parent["run_id"], "report")}
    assert {"report/gains_vs_kl.png", "report/report.html", "report/training_curves.png"} <= parent_arts
    # the PPO point's per-step log feeds the report's training curves
    steps = [json.loads(x)["step"] for x in (root / "points" / ppo_row["point_id"] / "train_metrics.jsonl").open()]
    assert steps == [1, 2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's chromium (apt-get install -y chromium)")
def test_browser_shows_readable_run_names(readable_sweep, capsys, tmp_path):
    """`goodhart ui` (a loopback server) + headless Chromium: the experiment's runs page, the
    sweep's parent expanded and the verdict tag shown as a column, lists every child by its
    readable name with its verdict. The screenshot is kept (GOODHART_SCREENSHOTS=dir)."""
    from browser import Browser

    root = readable_sweep
    assert main(["report", str(root)]) == 0
    capsys.readouterr()
    parent = json.loads((root / "parent.json").read_text())
    port = _free_port()
    goodhart = Path(shutil.which("goodhart") or Path(__file__).parents[1] / ".venv/bin/goodhart")
    ui = subprocess.Popen(
        [str(goodhart), "ui", "--uri", parent["uri"], "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root.parent.parent,
    )
    b = None
    try:
        for _ in range(240):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        b = Browser(tmp_path / "profile")
        b.open(f"http://127.0.0.1:{port}/#/experiments/{parent['experiment_id']}/runs")
        assert b.wait_for("document.body && document.body.innerText.includes('sweep-readable')", 90)
        b.js("document.querySelector('button[data-component-id*=runnamecellrenderer]').click()")  # expand the parent
        df = pd.read_csv(root / "results.csv")
        names = [run_name(r["algo"], r["x_name"], r["x"], r["error_law"]) for r in df.to_dict("records")]
        assert b.wait_for(f"document.body.innerText.includes({names[-1]!r})", 30)
        b.js("[...document.querySelectorAll('button[aria-label=Close]')].forEach(e => e.click())")  # the assistant
        b.js("[...document.querySelectorAll('button')].find(e => e.innerText.trim() == 'Columns').click()")
        time.sleep(0.5)
        b.js("document.querySelector('input[placeholder=\"Search columns\"]').focus()")
        b.page("Input.insertText", text="goodhart.verdict")
        time.sleep(0.8)
        b.js(
            "[...document.querySelectorAll('span, label, div')]"
            ".filter(e => e.children.length == 0 && e.innerText.trim() == 'goodhart.verdict').pop().click()"
        )
        for kind in ("keyDown", "keyUp"):
            b.page("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)
        labelled = pd.read_csv(root / "report" / "verdicts.csv")
        assert b.wait_for(f"document.body.innerText.includes({labelled['verdict'].iloc[0]!r})", 20)
        text = b.text()
        for name in names:
            assert name in text
        shots = Path(os.environ.get("GOODHART_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        assert b.screenshot(shots / "experiment_runs.png").stat().st_size > 20_000
        # the report.html opens from disk, its embedded figures decode
        b.open((root / "report" / "report.html").resolve().as_uri())
        assert b.wait_for("document.images.length >= 4 && [...document.images].every(i => i.complete)", 30)
        assert b.js("[...document.images].filter(i => i.naturalWidth > 200).length") >= 4
        assert "frontier" in b.js("[...document.images].map(i => i.alt).join(' ')")
        b.screenshot(shots / "report_html.png")
    finally:
        if b is not None:
            b.close()
        ui.terminate()
        ui.wait(timeout=30)


def test_the_experiment_is_marked_for_the_runs_table(tmp_path):
    """MLflow 3's UI picks an experiment's landing page from the `mlflow.experimentKind` tag (the
    GenAI overview, or the runs table for "custom_model_development"): every sweep experiment
    carries the second, and one made before the tag gets it the next time it is used."""
    from mlflow import MlflowClient

    from goodhart.pipeline.sweeps.tracking import EXPERIMENT_KIND, Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t = Tracker(uri)
    assert EXPERIMENT_KIND == ("mlflow.experimentKind", "custom_model_development")
    new = t.experiment_id("fresh")
    old = MlflowClient(uri).create_experiment("older")  # as a store written before the tag
    assert t.experiment_id("older") == old and t.experiment_id("fresh") == new
    older = MlflowClient(uri).create_experiment("oldest")
    t.mark_for_runs_table(older)  # what `goodhart report` does for the sweep it reports
    for eid in (new, old, older):
        assert MlflowClient(uri).get_experiment(eid).tags[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]


def test_the_ui_names_the_artifact_locations_it_really_reads(tmp_path):
    """A local sweep logs artifacts straight to its experiment's location, not to the server's
    --artifacts-destination: `goodhart ui` / `goodhart server` name both."""
    from mlflow import MlflowClient

    from goodhart.pipeline.cluster.server import artifact_note
    from goodhart.pipeline.sweeps.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    eid = Tracker(uri).experiment_id("demo")
    location = MlflowClient(uri).get_experiment(eid).artifact_location
    note = artifact_note(uri, str(tmp_path / "mlartifacts"))
    assert f"'demo' in {location}" in note and f"through this server go to {tmp_path / 'mlartifacts'}" in note
