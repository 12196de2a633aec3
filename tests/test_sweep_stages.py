"""What a sweep shows and writes while it runs: the base pool as a stage of its own (the sweep bar
does not sit at 0 while the first point samples it), the results table rewritten at a bounded
rate (not once per point: that is quadratic) and complete at the end, and threads chosen from
the cores actually free."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from goodhart.pipeline.base import threads as T
from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.sweeps import record

DIST = {"reward": "distributional", "sampling.n": 256, "prompts.n_eval": 4, "eval.bootstrap": 20}


def _sweep(tmp: Path, set_: dict, branches: list[dict]) -> Path:
    spec = {"name": "st", "base": str(configs_dir() / "base.yaml"), "set": set_, "branches": branches}
    (tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    return tmp / "s.yaml"


# ---- results table -----------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_results_writer_rewrites_at_a_bounded_rate(tmp_path, monkeypatch):
    clock, calls = Clock(), []

    def fake_write(root):
        calls.append(clock.t)
        clock.t += 1.0  # a rewrite that takes 1 s: at most 5% of the time -> every 20 s
        return None

    monkeypatch.setattr(record, "write_results", fake_write)
    w = record.ResultsWriter(tmp_path, min_interval=5.0, max_share=0.05, clock=clock)
    for _ in range(100):  # a point finished every 0.5 s for 50 s
        clock.t += 0.5
        w.maybe()
    assert calls[0] == pytest.approx(5.0)  # the first after min_interval, before its cost was known
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps and all(g >= 20.0 for g in gaps)  # then no more than 5% of the time
    assert 2 <= w.writes == len(calls) <= 4  # not 100


def test_sweep_table_is_complete_at_the_end_with_fewer_rewrites(in_tmp, monkeypatch):
    n = {"writes": 0}
    real = record.write_results

    def counting(root):
        n["writes"] += 1
        return real(root)

    import goodhart.pipeline.sweeps.invoke as invoke
    import goodhart.pipeline.sweeps.local as local

    monkeypatch.setattr(record, "write_results", counting)
    monkeypatch.setattr(invoke, "write_results", counting)
    monkeypatch.setattr(local, "write_results", counting)
    f = _sweep(
        in_tmp,
        {**DIST, "tracking.enabled": False},
        [{"set": {"algo": "bon"}, "grid": {"algo.n": [1, 2, 4, 8, 16, 32]}}],
    )
    assert main(["sweep", str(f), "--quiet"]) == 0
    df = pd.read_csv(in_tmp / "runs" / "st" / "results.csv")
    assert len(df) == 6 and (df["status"] == "done").all()
    assert sorted(df["algo.n" if "algo.n" in df else "set:algo.n"]) == [1, 2, 4, 8, 16, 32]
    assert n["writes"] < 6  # one per point before; the points here take milliseconds
    pq = pd.read_parquet(in_tmp / "runs" / "st" / "results.parquet")
    assert list(pq["point_id"]) == list(df["point_id"])


# ---- the base pool as its own stage --------------------------------------------------------------
def test_base_pool_is_built_before_the_first_point(in_tmp, small_model_dir, capsys, monkeypatch):
    import goodhart.pipeline.sweeps.local as local
    from goodhart.pipeline.io import cache_dir

    monkeypatch.setenv("GOODHART_CACHE", str(in_tmp / "cache"))  # the session's cache has others' pools
    seen = []
    real = local.run_point

    def pools() -> set[str]:
        return {str(p) for p in (cache_dir() / "pools").glob("*/completions.json")}

    before = pools()

    def spy(cfg, point_dir, target=None, progress=True):
        seen.append(len(pools() - before))
        return real(cfg, point_dir, target, progress=progress)

    monkeypatch.setattr(local, "run_point", spy)
    f = _sweep(
        in_tmp,
        {
            "model.path": str(small_model_dir),
            "prompts.n_train": 8,
            "prompts.n_eval": 2,
            "sampling.n": 4,
            "sampling.max_new_tokens": 4,
            "eval.bootstrap": 10,
            "eval.n_examples": 1,
            "tracking.enabled": False,
        },
        [{"set": {"algo": "bon"}, "grid": {"algo.n": [1, 2]}}],
    )
    assert main(["sweep", str(f)]) == 0
    assert seen == [1, 1]  # this sweep's one pool was sampled before point 1 started
    err = capsys.readouterr().err
    stage, bar = err.find("base pool (sample + score)"), err.find("sweep st")
    assert 0 <= stage < bar  # its own line, ahead of the sweep's bar


def test_best_of_n_beyond_a_quarter_of_the_pool_is_flagged_in_the_sweeps_own_table(in_tmp, capsys):
    """n > N/4 runs (the estimate is valid, its interval wide): the table the sweep prints says so."""
    f = _sweep(
        in_tmp,
        {**DIST, "sampling.n": 16, "tracking.enabled": False},
        [{"set": {"algo": "bon"}, "grid": {"algo.n": [4, 8]}}],
    )
    assert main(["sweep", str(f)]) == 0
    rows = {ln.split()[1]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("bon")}
    assert "n>N/4" in rows["n=8"] and "n>N/4" not in rows["n=4"]


def test_a_distributional_sweep_has_no_pool_stage(in_tmp, capsys):
    f = _sweep(in_tmp, {**DIST, "tracking.enabled": False}, [{"set": {"algo": "bon"}, "grid": {"algo.n": [1, 2]}}])
    assert main(["sweep", str(f)]) == 0
    assert "base pool" not in capsys.readouterr().err


# ---- threads -------------------------------------------------------------------------------------
def _fake_stat(monkeypatch, idle_share: list[float]):
    """Two reads of /proc/stat 100 ticks apart; cpu i idle for idle_share[i] of them."""
    reads = iter(
        [
            {f"cpu{i}": (0, 0) for i in range(len(idle_share))},
            {f"cpu{i}": (int(100 * s), 100) for i, s in enumerate(idle_share)},
        ]
    )
    monkeypatch.setattr(T, "_cpu_times", lambda: next(reads))
    monkeypatch.setattr(T.time, "sleep", lambda s: None)
    monkeypatch.setattr(T.os, "sched_getaffinity", lambda pid: set(range(len(idle_share))), raising=False)
    monkeypatch.setattr(T, "usable_cores", lambda: len(idle_share))


@pytest.mark.parametrize(
    "idle, jobs, want",
    [
        ([1.0, 1.0, 1.0, 1.0], 1, 4),  # quiet: every core
        ([1.0, 1.0, 1.0, 1.0], 2, 2),  # --jobs 2: cores / 2 each
        ([0.1, 0.0, 1.0, 0.9], 1, 2),  # two cores busy: the two free ones
        ([0.0, 0.0], 1, 1),  # all busy: one thread, never zero
        ([1.0, 1.0], 4, 1),  # more workers than cores: one each
    ],
)
def test_threads_come_from_the_free_cores(monkeypatch, idle, jobs, want):
    monkeypatch.delenv("GOODHART_THREADS", raising=False)
    monkeypatch.setattr(T, "_USER_CAP", "")
    _fake_stat(monkeypatch, idle)
    assert T.choose_threads(jobs) == want


def test_the_users_thread_settings_win(monkeypatch):
    _fake_stat(monkeypatch, [1.0] * 4)
    monkeypatch.setattr(T, "_USER_CAP", "2")  # OMP_NUM_THREADS=2: an upper bound
    monkeypatch.delenv("GOODHART_THREADS", raising=False)
    assert T.choose_threads(1) == 2
    monkeypatch.setenv("GOODHART_THREADS", "3")  # the count outright
    assert T.choose_threads(1) == 3


def test_free_cores_reads_this_machine():
    free = T.free_cores(window=0.05)
    assert 0.0 <= free <= T.usable_cores()


def test_the_cli_asks_openmp_not_to_spin(monkeypatch, tmp_path):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["config", "show"]) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice stays
    assert main(["config", "show"]) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


# ---- set-up -------------------------------------------------------------------------------------
def test_make_setup_says_what_each_long_step_is(tmp_path):
    """`make setup` announces each step and lets pip print its lines for the two big installs
    (no -q there); with no terminal (CI) pip's bar is off, never a wall of redraws."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        ["make", "-n", "setup", f"VENV={tmp_path / 'venv'}"], cwd=repo, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    stages = [ln for ln in lines if "setup " in ln and ln.startswith("echo")]
    assert len(stages) == 5 and "1/4" in stages[0] and "done" in stages[-1]
    big = [ln for ln in lines if "pip install" in ln and ("TORCH" in ln or "torch==" in ln or " -e " in ln)]
    assert len(big) == 2 and all(" -q " not in ln and "--progress-bar off" in ln for ln in big)


# ---- MLflow on SQLite ---------------------------------------------------------------------------
def test_a_sqlite_tracking_store_commits_in_wal_mode(in_tmp):
    """WAL + synchronous=NORMAL (pipeline/sweeps/sqlite_store.py): fewer fsyncs per MLflow call.
    The mode is the file's, so other readers (the UI, a plain MlflowClient) see it too."""
    import sqlite3

    from mlflow import MlflowClient

    f = _sweep(in_tmp, DIST, [{"set": {"algo": "bon"}, "grid": {"algo.n": [1, 2]}}])
    assert main(["sweep", str(f), "--quiet"]) == 0
    con = sqlite3.connect(in_tmp / "mlflow.db")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()
    exp = MlflowClient(f"sqlite:///{in_tmp / 'mlflow.db'}").get_experiment_by_name("st")
    runs = MlflowClient(f"sqlite:///{in_tmp / 'mlflow.db'}").search_runs([exp.experiment_id])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)  # parent + 2 points


def test_a_new_sqlite_store_is_a_copy_of_an_empty_one_and_works(tmp_path, monkeypatch):
    """The second new store on a machine is copied from the template the first one built
    (sqlite_store.seed_new_store): MLflow's schema, no experiment of the template's, and
    MLflow's Default experiment made on first open with this store's own artifact root."""
    from mlflow import MlflowClient

    from goodhart.pipeline.io import cache_dir
    from goodhart.pipeline.sweeps.sqlite_store import seed_new_store
    from goodhart.pipeline.sweeps.tracking import check_store

    monkeypatch.setenv("GOODHART_CACHE", str(tmp_path / "cache"))
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        monkeypatch.chdir(d)
        check_store(f"sqlite:///{d / 'mlflow.db'}")
        c = MlflowClient(f"sqlite:///{d / 'mlflow.db'}")
        [default] = c.search_experiments()
        assert default.name == "Default" and str(d) in default.artifact_location
        exp = c.create_experiment("x")
        run = c.create_run(exp).info.run_id
        c.log_metric(run, "m", 1.0)
        c.set_terminated(run)
        assert c.get_run(run).data.metrics == {"m": 1.0}
    [tpl] = (cache_dir() / "mlflow-store").glob("empty-*.db")
    assert not seed_new_store(tmp_path / "a" / "mlflow.db")  # an existing store is never replaced
    assert tpl.stat().st_size > 0
