"""Many processes logging to one tracking store at once, as a SLURM array's tasks do.

K = 4 writer processes start together (a barrier file), each opens a child run under one
parent and logs N_METRICS metrics at N_STEPS steps plus params through goodhart.pipeline.sweeps.tracking.Tracker
(the code tasks use). Afterwards every run, every metric and every step must be in the store.

  - server: `goodhart server` on 127.0.0.1 (a real MLflow server; the store for clusters),
    started by the test and stopped by its pid.
  - sqlite: the tasks write one SQLite file directly; Tracker retries on "database is locked".
    This is the `--allow-sqlite` opt-in (a few tasks, one machine, local disk). Without the
    opt-in `--backend slurm` refuses a SQLite URI: on a shared filesystem SQLite's locking is
    not to be trusted, whatever the retries (see pipeline/cluster/slurm.py check_tracking_uri).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import shared_tracking_server

K, N_METRICS, N_STEPS = 4, 50, 5

WRITER = r"""
import os, sys, time
from pathlib import Path
uri, exp, parent, rank, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
from goodhart.pipeline.sweeps.tracking import Tracker
t = Tracker(uri)
while not go.exists():          # start together: the most contention
    time.sleep(0.01)
run = t.start_run(exp, f"writer-{rank}", parent, tags={"rank": str(rank)})
t.log_params(run, {f"p{i}": str(i * rank) for i in range(20)})
for step in range(%(steps)d):
    t.log_metrics(run, {f"m/{i}": rank * 1000 + step * 100 + i for i in range(%(metrics)d)}, step)
t.finish(run, "FINISHED")
print(run)
""" % {"steps": N_STEPS, "metrics": N_METRICS}


@pytest.fixture(scope="session")
def server(request, tmp_path_factory):
    return shared_tracking_server(request, tmp_path_factory)


def _hammer(uri: str, tmp: Path, db: Path) -> None:
    """K writers at once on `uri`; then every run and param through MLflow, and every metric value
    at every step straight from the backing SQLite file `db` (one query, not K x N_METRICS calls)."""
    from mlflow import MlflowClient

    from goodhart.pipeline.sweeps.tracking import Tracker

    t = Tracker(uri)
    exp = t.experiment_id("concurrency")
    parent = t.start_run(exp, "parent")
    go = tmp / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, uri, exp, parent, str(r), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(K)
    ]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    run_ids = [o.strip().splitlines()[-1] for o, _ in outs]

    client = MlflowClient(uri)
    children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(r.info.run_id for r in children) == sorted(run_ids)
    rank_of = {}
    for r in children:
        rank_of[r.info.run_id] = rank = int(r.data.tags["rank"])
        assert r.info.status == "FINISHED"
        assert r.data.params == {f"p{i}": str(i * rank) for i in range(20)}
        assert r.data.metrics == {f"m/{i}": rank * 1000 + (N_STEPS - 1) * 100 + i for i in range(N_METRICS)}
    hist = client.get_metric_history(run_ids[0], "m/7")  # one full history through the API too
    assert sorted(m.step for m in hist) == list(range(N_STEPS))

    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT run_uuid, key, step, value FROM metrics WHERE run_uuid IN (%s)" % ",".join("?" * len(run_ids)),
            run_ids,
        ).fetchall()
    expected = {
        (rid, f"m/{i}", s, float(rk * 1000 + s * 100 + i))
        for rid, rk in rank_of.items()
        for i in range(N_METRICS)
        for s in range(N_STEPS)
    }
    assert len(rows) == len(expected) == K * N_METRICS * N_STEPS  # nothing lost, nothing doubled
    assert set(rows) == expected


def test_k_writers_through_the_tracking_server(server, tmp_path):
    _hammer(server.uri, tmp_path, server.db)


def test_k_writers_on_one_sqlite_file_with_retries(tmp_path):
    _hammer(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path, tmp_path / "mlflow.db")


def test_server_binds_loopback_by_default_and_prints_the_uri(server):
    from goodhart.pipeline.cluster.server import allowed_hosts, server_argv

    want = f"export MLFLOW_TRACKING_URI={server.uri}"
    deadline = time.monotonic() + 30  # the fixture waits for health; `goodhart server` prints its lines after
    while want not in (out := server.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"Uvicorn running on {server.uri}" in out  # bound to loopback only
    assert f"export MLFLOW_TRACKING_URI={server.uri}" in out
    argv = server_argv("127.0.0.1", 5000, "sqlite:///x.db", "/a")
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--workers") + 1] == "1"
    assert "--allowed-hosts" not in argv and allowed_hosts("0.0.0.0")
