"""Sweeps: expansion, stable ids, skipping finished points, results table, MLflow structure."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.sweeps.spec import expand, load_sweep

DIST = {"reward": "distributional", "sampling.n": 512, "prompts.n_eval": 6, "eval.bootstrap": 50}


def write_sweep(tmp_path: Path, **body) -> Path:
    spec = {"name": "t", "base": str(configs_dir() / "base.yaml"), "set": DIST, **body}
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def test_expansion_grid_zip_and_branches(tmp_path):
    f = write_sweep(
        tmp_path,
        grid={"reward.error": ["gaussian", "levy"]},
        zip={"seed": [0, 1], "eval.ci": [0.9, 0.8]},
        branches=[
            {"set": {"algo": "tilt"}, "grid": {"algo.kl.coef": [1, 2, 3]}},
            {"set": {"algo": "bon"}, "grid": {"algo.n": [1, 4]}},
        ],
    )
    sweep, base = load_sweep(f)
    points = expand(sweep, base)
    assert len(points) == 2 * 2 * (3 + 2)
    assert len({p.id for p in points}) == len(points)
    kinds = {(p.cfg.algo.kind, p.cfg.reward.error.name, p.cfg.seed, p.cfg.eval.ci) for p in points}
    assert ("bon", "levy", 1, 0.8) in kinds and ("tilt", "gaussian", 0, 0.9) in kinds
    assert ("tilt", "gaussian", 0, 0.8) not in kinds  # zipped, not crossed


def test_ids_are_stable_and_ignore_labels(tmp_path):
    f = write_sweep(tmp_path, grid={"algo.kl.coef": [1.0, 2.0]})
    ids1 = [p.id for p in expand(*load_sweep(f))]
    ids2 = [p.id for p in expand(*load_sweep(f, ["name=other", "tracking.enabled=false"]))]
    assert ids1 == ids2
    assert [p.id for p in expand(*load_sweep(f, ["seed=3"]))] != ids1


def test_a_bad_point_is_caught_before_anything_runs(tmp_path, capsys):
    f = write_sweep(tmp_path, grid={"algo.kl.coef": [1.0, -2.0]})
    assert main(["sweep", str(f), "--output", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "algo.kl.coef = -2.0" in err and "greater than 0" in err
    assert not (tmp_path / "out").exists()


def test_sweep_runs_skips_finished_points_and_records_mlflow(in_tmp, capsys):
    f = write_sweep(
        in_tmp,
        grid={"reward.error": ["gaussian", "student_t(df=2)"]},
        branches=[
            {"set": {"algo": "tilt"}, "grid": {"algo.kl.coef": [2.0, 0.5]}},
            {"set": {"algo": "bon"}, "grid": {"algo.n": [1, 16]}},
        ],
    )
    assert main(["sweep", str(f), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "utility gaussian x1 | proxy gaussian x1 + gaussian x1" in out
    assert "utility gaussian x1 | proxy gaussian x1 + student_t(df=2) x1" in out
    root = in_tmp / "runs" / "t"
    import pandas as pd

    df = pd.read_csv(root / "results.csv")
    assert len(df) == 8 and set(df["status"]) == {"done"}
    bon1 = df[(df["algo"] == "bon") & (df["x"] == 1)]
    assert np.allclose(bon1["gain/utility"], 0, atol=1e-9) and np.allclose(bon1["kl"], 0)
    assert {"reward/proxy/lo", "reward/proxy/hi", "gain/utility/lo", "kl", "kl_estimator", "n/samples"} <= set(
        df.columns
    )

    # Re-run: nothing is redone.
    mtimes = {p: p.stat().st_mtime_ns for p in root.glob("points/*/result.json")}
    assert main(["sweep", str(f), "--quiet"]) == 0
    assert "0 run, 8 already done" in capsys.readouterr().out
    assert mtimes == {p: p.stat().st_mtime_ns for p in root.glob("points/*/result.json")}

    # A deleted result is redone, alone.
    victim = sorted(mtimes)[0]
    victim.unlink()
    assert main(["sweep", str(f), "--quiet"]) == 0
    assert "1 run, 7 already done" in capsys.readouterr().out

    # MLflow: one experiment, one parent per sweep directory (reruns reopen it), one child per
    # point (the redone point continues its own child run, named in its run.json).
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{in_tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("t")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 8
    first_parent = parents[0]
    assert first_parent.info.status == "FINISHED"
    mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == first_parent.info.run_id]
    assert len(mine) == 8
    c = mine[0]
    assert {"eval/reward/proxy", "eval/reward/utility", "eval/kl", "eval/gain/utility"} <= set(c.data.metrics)
    assert c.data.params["algo.kind"] in ("tilt", "bon") and "reward.error.name" in c.data.params
    assert c.info.status == "FINISHED"
    arts = {a.path for a in client.list_artifacts(first_parent.info.run_id)}
    assert {"results.csv", "tables.txt"} <= arts


def test_a_point_is_recorded_in_few_store_calls(in_tmp, capsys, monkeypatch):
    """A point's child run costs MLflow calls, each a transaction on a SQLite store: create it,
    one batch (params, metrics and tags), its end; its artifacts (config, completions) go
    straight into the run's artifact location, without reading the run back. Not log_table (it
    reads the run back twice and sets a tag by itself) or a call per artifact or per tag."""
    from collections import Counter

    from mlflow import MlflowClient

    f = write_sweep(in_tmp, grid={"algo.kl.coef": [1.0, 2.0]}, set={**DIST, "eval.n_examples": 2})
    calls: Counter = Counter()
    for name in ("create_run", "log_batch", "log_artifact", "log_artifacts", "log_table", "set_tag", "set_terminated"):
        real = getattr(MlflowClient, name)

        def counted(self, *a, _real=real, _name=name, **kw):
            calls[_name] += 1
            return _real(self, *a, **kw)

        monkeypatch.setattr(MlflowClient, name, counted)
    assert main(["sweep", str(f), "--quiet"]) == 0
    capsys.readouterr()
    # 2 points + the sweep's parent run: the parent logs its params and, at the end, its files
    assert calls == Counter(create_run=3, log_batch=2 + 1, log_artifacts=1, set_terminated=3), calls


def test_failed_point_is_recorded_and_retried(in_tmp, capsys, monkeypatch):
    f = write_sweep(in_tmp, grid={"algo.kl.coef": [1.0, 2.0]}, config={"tracking": {"enabled": False}})
    import goodhart.pipeline.optimizers.tilt as tilt

    real = tilt.run

    def flaky(ctx):
        if ctx.cfg.algo.kl.coef == 2.0:
            raise RuntimeError("boom")
        return real(ctx)

    monkeypatch.setattr(tilt, "run", flaky)
    assert main(["sweep", str(f), "--quiet"]) == 1
    capsys.readouterr()
    assert main(["status", str(in_tmp / "runs" / "t")]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "RuntimeError: boom" in out and "done: 1" in out
    monkeypatch.setattr(tilt, "run", real)
    assert main(["sweep", str(f), "--quiet"]) == 0
    assert "1 run, 1 already done" in capsys.readouterr().out


def test_distributional_sweep_shows_the_tail_contrast(in_tmp):
    # Kwa et al.: best-of-n utility keeps rising for gaussian error, falls back for heavy error.
    f = write_sweep(
        in_tmp,
        set={**DIST, "sampling.n": 4096, "prompts.n_eval": 16, "algo": "bon", "tracking.enabled": False},
        grid={"reward.error": ["gaussian", "levy"], "algo.n": [16, 4096]},
    )
    assert main(["sweep", str(f), "--quiet"]) == 0
    import pandas as pd

    df = pd.read_csv(in_tmp / "runs" / "t" / "results.csv")
    g = df[df["error_law"].str.startswith("gaussian")].set_index("x")["gain/utility"]
    h = df[df["error_law"].str.startswith("levy")].set_index("x")["gain/utility"]
    assert g[4096] > g[16] > 0.5
    assert abs(h[4096]) < 0.3 < g[4096]


def test_run_single_point(in_tmp, capsys):
    assert (
        main(
            [
                "run",
                str(configs_dir() / "base.yaml"),
                "reward=distributional",
                "sampling.n=64",
                "prompts.n_eval=4",
                "tracking.enabled=false",
                "--quiet",
            ]
        )
        == 0
    )
    res = list((in_tmp / "runs" / "run" / "points").glob("*/result.json"))
    assert len(res) == 1 and json.loads(res[0].read_text())["status"] == "done"


def test_preempted_point_is_pending_not_failed(in_tmp, monkeypatch):
    import goodhart.pipeline.optimizers.tilt as tilt
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.sweeps.point import run_point
    from goodhart.pipeline.sweeps.record import point_status
    from goodhart.pipeline.train.preemption import EXIT_REQUEUE

    cfg = load_config(configs_dir() / "base.yaml", [f"{k}={v}" for k, v in DIST.items()] + ["tracking.enabled=false"])
    monkeypatch.setattr(tilt, "run", lambda ctx: (_ for _ in ()).throw(SystemExit(EXIT_REQUEUE)))
    pdir = in_tmp / "points" / "p"
    with pytest.raises(SystemExit):
        run_point(cfg, pdir, progress=False)
    assert (pdir / "preempted.json").is_file() and not (pdir / "error.json").exists()
    assert point_status(in_tmp, "p") == "pending"


def test_parallel_jobs_give_the_same_results(in_tmp):
    import pandas as pd

    f = write_sweep(
        in_tmp,
        grid={"reward.error": ["gaussian", "levy"]},
        config={"tracking": {"enabled": False}},
        branches=[{"set": {"algo": "tilt"}, "grid": {"algo.kl.coef": [2.0, 0.5]}}],
    )
    assert main(["sweep", str(f), "--quiet", "--jobs", "2", "--output", "par"]) == 0
    assert main(["sweep", str(f), "--quiet", "--output", "seq"]) == 0
    # the alarm's columns too: the workers read the pool's null from the statistics cache
    cols = ["point_id", "reward/proxy", "reward/utility", "kl", "alarm/p_value", "alarm/tail_p", "alarm/score"]
    par = pd.read_csv(in_tmp / "par" / "t" / "results.csv")[cols].sort_values("point_id").reset_index(drop=True)
    seq = pd.read_csv(in_tmp / "seq" / "t" / "results.csv")[cols].sort_values("point_id").reset_index(drop=True)
    assert len(par) == 4 and par.equals(seq)


def test_workers_start_on_different_pools():
    """pipeline/sweeps/local.py interleave_pools: K workers taking points from the front start on
    K pools (each builds its own pool's statistics) rather than K - 1 waiting on one, then take the
    rest pool by pool (what a process remembers of a pool serves its next point)."""
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.sweeps.local import interleave_pools
    from goodhart.pipeline.sweeps.spec import Point

    cfgs = {
        law: load_config(configs_dir() / "base.yaml", ["reward=distributional", f"reward.error={law}"])
        for law in ("gaussian", "levy")
    }
    pts = [
        Point(i, f"{law}{k}", {}, cfgs[law])
        for i, (law, k) in enumerate([("gaussian", 1), ("gaussian", 2), ("gaussian", 3), ("levy", 1), ("levy", 2)])
    ]
    assert [p.id for p in interleave_pools(pts)] == ["gaussian1", "levy1", "gaussian2", "gaussian3", "levy2"]


def test_a_key_added_later_keeps_finished_points_ids_at_its_neutral_value():
    """pipeline/sweeps/point.py ADDED_KEYS: `algo.alarm_samples` (0: the training batch, what
    every result before it was) and `eval.holdout` (none) leave a point's id as it was before the
    key existed; any other value is a new point."""
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.io import short_hash
    from goodhart.pipeline.sweeps.point import drop_neutral, point_id

    cfg = load_config(None, ["algo=ppo"])
    before = cfg.model_dump(mode="json", exclude={"name", "tracking", "output_dir", "alarm"})
    del before["algo"]["alarm_samples"]  # the config as it dumped before the keys were added
    del before["eval"]["holdout"]  # eval.holdout (none: no held-out proxy, what every result before it was)
    del before["eval"]["resolve"]  # eval.resolve: which points a sweep adds, never part of a point's id
    del before["eval"]["alarm"]  # (and before eval.alarm)
    drop_neutral(before)  # the other added keys, as point_id drops them
    assert point_id(cfg) == short_hash(before, 10)
    assert point_id(load_config(None, ["algo=ppo", "algo.alarm_samples=4"])) != point_id(cfg)
    assert point_id(load_config(None, ["algo=ppo", "eval.holdout=independent"])) != point_id(cfg)
    # the `alarm:` section (the alarm's rule) likewise: at its defaults (rule 4's, as written in
    # configs/base.yaml) a point is what it was; another rule is another point
    assert point_id(load_config(None, ["algo=ppo", "alarm.share=0.8", "alarm.n_noise=1999"])) == point_id(cfg)
    for key in ("alarm.share=0.7", "alarm.alpha=0.01", "alarm.n_null=99", "alarm.noise_z=3"):
        assert point_id(load_config(None, ["algo=ppo", key])) != point_id(cfg), key


def test_a_finished_point_is_stale_only_under_another_alarm_rule(tmp_path):
    """The rule a row's alarm was computed under is kept in the row (alarm/rule, with alarm/version):
    the point is stale when the config's rule differs from it (rows from before the rule was kept:
    rule 4's defaults), not otherwise."""
    from goodhart.eval import metrics as M
    from goodhart.eval.alarm import VERSION, AlarmRule
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.sweeps.point import alarm_stale

    row = {M.ALARM_LEVEL: "quiet", M.ALARM_VERSION: float(VERSION), M.ALARM_RULE: AlarmRule().key()}
    rule = load_config(None, []).alarm.rule()
    assert alarm_stale(row, rule) is None
    assert alarm_stale({k: v for k, v in row.items() if k != M.ALARM_RULE}, rule) is None  # before it was kept
    other = load_config(None, ["alarm.share=0.7"]).alarm.rule()
    assert "share=0.7" in alarm_stale(row, other)
    assert alarm_stale({**row, M.ALARM_RULE: other.key()}, other) is None
    assert "alarm rule 3" in alarm_stale({**row, M.ALARM_VERSION: 3.0}, rule)


def test_keys_added_for_the_arena_keep_finished_points_ids():
    """The arena's keys (issue 31) -- the tilt's `algo.kl.per_prompt`, best-of-n's `algo.kl`,
    `eval.alarm`, an ensemble's `rho` -- leave every finished point's id as it was at their
    neutral values."""
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.io import short_hash
    from goodhart.pipeline.sweeps.point import point_id

    def old_id(cfg, drop):
        d = cfg.model_dump(mode="json", exclude={"name", "tracking", "output_dir", "alarm"})
        for path in [
            *drop,
            "eval.holdout",
            "eval.resolve",
            "sampling.engine",
            "sampling.vllm_gpu_memory",
            "sampling.grown_from",
        ]:
            node = d
            *parents, last = path.split(".")
            for p in parents:
                node = node[p]
            del node[last]
        return short_hash(d, 10)

    tilt = load_config(None, ["algo=tilt"])
    assert point_id(tilt) == old_id(tilt, ["algo.kl.per_prompt", "eval.alarm"])
    bon = load_config(None, ["algo=bon"])
    assert point_id(bon) == old_id(bon, ["algo.kl", "eval.alarm"])
    ens = load_config(None, ["reward.ensemble.k=4", "reward.ensemble.combine=min"])
    assert point_id(ens) == old_id(ens, ["reward.ensemble.rho", "algo.kl.per_prompt", "eval.alarm"])
    for other in (["algo=tilt", "eval.alarm=false"], ["algo=bon", "algo.kl.target=2"], ["reward.ensemble.rho=0.5"]):
        assert point_id(load_config(None, other)) not in {point_id(tilt), point_id(bon), point_id(ens)}


def test_quick_variant_of_a_sweep_file(tmp_path):
    """`goodhart sweep FILE --quick`: the file's `quick:` keys replace the sweep's (its own name),
    its `set` merges in, its `branch_grid` replaces those lists in every branch; a file without one
    is a one-line error."""
    from goodhart.pipeline.errors import ConfigError
    from goodhart.pipeline.sweeps.spec import expand, load_sweep

    f = tmp_path / "s.yaml"
    f.write_text(
        "name: s\nset: {reward: distributional, tracking.enabled: false}\n"
        "grid: {seed: [0, 1, 2]}\n"
        "branches:\n  - {name: a, grid: {algo.kl.coef: [1, 2, 3]}}\n  - {name: b, set: {algo: bon}, grid: {algo.n: [2, 4]}}\n"
        "quick: {name: s_quick, grid: {seed: [0]}, set: {sampling.n: 64}, branch_grid: {algo.kl.coef: [1]}}\n"
    )
    full, base = load_sweep(f)
    assert full.name == "s" and len(expand(full, base)) == 3 * 5
    quick, base = load_sweep(f, quick=True)
    pts = expand(quick, base)
    assert quick.name == "s_quick" and len(pts) == 1 * (1 + 2)
    assert all(p.cfg.sampling.n == 64 and p.cfg.tracking.enabled is False for p in pts)
    f.write_text("name: s\ngrid: {seed: [0]}\n")
    with pytest.raises(ConfigError, match="no `quick:` variant"):
        load_sweep(f, quick=True)
