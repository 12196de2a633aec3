"""`goodhart status`: the overrides that tell points apart, in full; a point a live local
process runs shows as running; a running.json left by a dead process is stale (pending)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.sweeps.labels import distinguishing_overrides
from goodhart.pipeline.sweeps.point import RUNNING, run_point, running_state
from goodhart.pipeline.sweeps.record import write_sweep_dir
from goodhart.pipeline.sweeps.spec import expand, load_sweep


def test_distinguishing_overrides():
    ovs = [
        {"sampling.n": 512, "algo": "tilt", "algo.kl.coef": 1.0},
        {"sampling.n": 512, "algo": "bon", "algo.n": 16},
    ]
    assert distinguishing_overrides(ovs) == ["algo=tilt algo.kl.coef=1.0", "algo=bon algo.n=16"]
    assert distinguishing_overrides([{"seed": 1}]) == ["seed=1"]
    assert distinguishing_overrides([{}, {}]) == ["(base)", "(base)"]


def sweep_dir(tmp_path):
    long = "reward.error={name: student_t, df: 2.5, scale: 0.75, loc: 0.125, center: true}"
    spec = {
        "name": "st",
        "base": str(configs_dir() / "base.yaml"),
        "set": {"reward": "distributional", "sampling.n": 256, "prompts.n_eval": 4, "eval.bootstrap": 20},
        "branches": [
            {"set": {"algo": "tilt"}, "grid": {"algo.kl.coef": [1.0, 0.5]}},
            {
                "set": {"algo": "bon", long.split("=", 1)[0]: yaml.safe_load(long.split("=", 1)[1])},
                "grid": {"algo.n": [4]},
            },
        ],
    }
    f = tmp_path / "st.yaml"
    f.write_text(yaml.safe_dump(spec))
    sweep, base = load_sweep(f)
    points = expand(sweep, base)
    root = tmp_path / "runs" / "st"
    write_sweep_dir(root, f, sweep, points)
    return root, points


def test_status_shows_full_overrides_and_running_points(tmp_path, capsys):
    root, points = sweep_dir(tmp_path)
    live, dead, _ = points
    (root / "points" / live.id / RUNNING).write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (root / "points" / dead.id / RUNNING).write_text(json.dumps({"pid": gone.pid, "host": os.uname().nodename}))
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[1]: ln for ln in out.splitlines() if ln.strip()[:1].isdigit()}
    assert " running " in lines[live.id] and f"pid {os.getpid()}" in lines[live.id]
    assert " pending " in lines[dead.id] and "stale running.json" in lines[dead.id]
    assert "sampling.n" not in out  # the same on every point: not what tells them apart
    bon = lines[points[2].id]
    assert "'name': 'student_t', 'scale': 0.75}" in bon and "algo.n=4" in bon  # in full, not cut at 60 characters
    assert "running: 1" in out and "pending: 2" in out
    from goodhart.eval.alarm import VERSION as ALARM
    from goodhart.eval.goodhart import VERSION as VERDICT

    assert f"rules: verdict rule {VERDICT}, alarm rule {ALARM}" in out  # the rules its labels come from


def test_the_report_names_the_rule_versions_and_a_rows_alarm_keys(tmp_path, capsys):
    """report.md, report.html and the printed report say which verdict and alarm rule their labels
    came from; the alarm's keys too when the sweep set them (`alarm.share`)."""
    from goodhart.eval.alarm import VERSION as ALARM
    from goodhart.eval.goodhart import VERSION as VERDICT

    spec = {
        "name": "rv",
        "base": str(configs_dir() / "base.yaml"),
        "set": {
            "reward": "distributional",
            "sampling.n": 256,
            "prompts.n_eval": 4,
            "eval.bootstrap": 0,
            "tracking.enabled": False,
            "output_dir": str(tmp_path),
            "alarm.share": 0.5,
        },
        "branches": [{"set": {"algo": "bon"}, "grid": {"algo.n": [1, 8]}}],
    }
    (tmp_path / "rv.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(tmp_path / "rv.yaml"), "--quiet"]) == 0
    assert main(["report", str(tmp_path / "rv"), "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    said = f"verdict rule {VERDICT}, alarm rule {ALARM}, with alarm keys alpha=0.05 share=0.5"
    assert said in out.splitlines()[-1]
    for f in ("report.md", "report.html"):
        assert said in (tmp_path / "rv" / "report" / f).read_text(), f


def test_run_point_marks_itself_running_and_clears_it(tmp_path, monkeypatch):
    from goodhart.pipeline import optimizers

    root, points = sweep_dir(tmp_path)
    p = points[0]
    d = root / "points" / p.id
    seen = {}
    real = optimizers.get(p.cfg.algo.kind)

    def watching(ctx):
        seen["state"] = running_state(ctx.point_dir)
        return real(ctx)

    monkeypatch.setattr(optimizers, "get", lambda kind: watching)
    p.cfg.tracking.enabled = False
    run_point(p.cfg, d, None, progress=False)
    assert seen["state"] == ("running", f"pid {os.getpid()}")
    assert not (d / RUNNING).exists() and (d / "result.json").is_file()
