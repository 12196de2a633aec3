"""The SLURM backend against a real scheduler: a private single-node slurmctld + slurmd + munged
(tests/slurm_cluster.py), and a real `goodhart server` for tracking. No mocks of sbatch or squeue.

Tests marked `slurm` need the scheduler: the fixture installs Debian's slurm-wlm when missing
(root with apt-get, as in CI) and skips, saying why, only where it cannot. The others check the
configuration and injection guards without a scheduler.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import ensure_slurm, shared_tracking_server, start_cluster, stop_cluster

from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "slurm" / "sweep_array.sbatch"
DIST = {"reward": "distributional", "sampling.n": 256, "prompts.n_eval": 4, "eval.bootstrap": 50}


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    reason = ensure_slurm()
    if reason:
        pytest.skip(reason)
    c = start_cluster(tmp_path_factory.mktemp("slurm"))
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(c.conf)  # for sbatch/squeue run by goodhart, and the tasks
    yield c
    stop_cluster(c)
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


@pytest.fixture()
def tracked(request, tmp_path_factory, in_tmp, monkeypatch):
    """A working directory and MLFLOW_TRACKING_URI pointing at a real tracking server."""
    server = shared_tracking_server(request, tmp_path_factory)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    return in_tmp, server.uri


def write_sweep(where: Path, name: str, **body) -> Path:
    spec = {"name": name, "base": str(configs_dir() / "base.yaml"), "set": DIST, **body}
    p = where / f"{name}.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


def job_id(out: str) -> str:
    return out.split("submitted job array ", 1)[1].split(":", 1)[0]


def sbatch(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`sbatch --parsable ARGS` (the job id on stdout), straight at the test cluster."""
    return subprocess.run(["sbatch", "--parsable", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


def wait_for(cluster, job: str, timeout: float = 240) -> int:
    """Until no task of `job` is queued or running; returns the most tasks seen RUNNING at once."""
    most, t0 = 0, time.time()
    while time.time() - t0 < timeout:
        r = cluster.run("squeue", "-h", "-r", "-j", job, "-o", "%T", check=False)
        states = r.stdout.split()
        if r.returncode == 0 and not states:
            return most
        most = max(most, states.count("RUNNING"))
        time.sleep(0.25)
    raise TimeoutError(f"job {job} still queued after {timeout} s:\n{cluster.logs()}")


def show_job(cluster, job: str) -> str:
    return cluster.run("scontrol", "show", "job", "-o", job, check=False).stdout


# ---------------------------------------------------------------------------------------------
# A sweep on the real scheduler
# ---------------------------------------------------------------------------------------------
@pytest.mark.slurm
def test_sweep_completes_with_child_runs_respects_the_limit_and_takes_paths_literally(cluster, tracked, capsys):
    cwd, uri = tracked
    # A hostile output path: spaces, $(...), ;, and % (an sbatch filename pattern character).
    out_dir = cwd / "we ird $(touch PWNED) ; %x"
    f = write_sweep(cwd, "onslurm", grid={"algo.kl.coef": [0.5, 1.0, 2.0]}, slurm={"max_concurrent": 1, "time": "10"})
    assert main(["sweep", str(f), "--backend", "slurm", "--output", str(out_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    job = job_id(out)
    assert "--array=0-2%1" in out
    root = out_dir / "onslurm"
    assert "ArrayTaskThrottle=1" in show_job(cluster, job)

    most_running = wait_for(cluster, job)
    assert most_running <= 1  # two CPUs would fit two tasks: %1 held them back

    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "done: 3" in out and "closed as FINISHED" in out
    df = pd.read_csv(root / "results.csv")
    assert len(df) == 3 and set(df["status"]) == {"done"}
    for i in range(3):
        assert f"point {i} (" in (root / "logs" / f"{job}_{i}.out").read_text()
    assert not list(cwd.rglob("PWNED")) and not (Path.home() / "PWNED").exists()

    # The record: three FINISHED child runs under the sweep's parent, each with its metrics.
    from mlflow import MlflowClient

    parent = json.loads((root / "parent.json").read_text())
    assert parent["uri"] == uri
    client = MlflowClient(uri)
    children = client.search_runs(
        [parent["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{parent['run_id']}'"
    )
    assert len(children) == 3 and {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.tags["goodhart.point_id"] for r in children} == set(df["point_id"])
    assert all("eval/kl" in r.data.metrics and "eval/reward/utility" in r.data.metrics for r in children)
    assert client.get_run(parent["run_id"]).info.status == "FINISHED"

    # Submitting again is refused; --resume has nothing to do.
    assert main(["sweep", str(f), "--backend", "slurm", "--output", str(out_dir), "--quiet"]) == 2
    assert "already submitted" in capsys.readouterr().err
    assert main(["sweep", str(f), "--backend", "slurm", "--output", str(out_dir), "--resume", "--quiet"]) == 0
    assert "nothing to submit" in capsys.readouterr().out
    assert len(json.loads((root / "slurm_jobs.json").read_text())) == 1


@pytest.mark.slurm
def test_a_failed_point_is_reported_with_its_log_and_resume_reruns_only_it(
    cluster, tracked, small_model_dir, capsys, monkeypatch
):
    """Point 1's reward module raises on import; status says failed and where the log is; the
    user fixes the module; --resume submits exactly index 1 (under accelerate launch, as
    configured) and the sweep completes."""
    cwd, uri = tracked
    mods = cwd / "mods"
    mods.mkdir()
    (mods / "flaky_reward.py").write_text("raise RuntimeError('the reward module is broken')\n")
    monkeypatch.setenv("PYTHONPATH", str(mods))  # the tasks inherit the environment (sbatch --export=ALL)
    lm = {
        "model": {"name": "path", "path": str(small_model_dir)},
        "sampling.n": 4,
        "sampling.max_new_tokens": 4,
        "prompts.n_eval": 2,
        "prompts.n_train": 2,
        "eval.n_examples": 0,
    }
    f = write_sweep(
        cwd,
        "flaky",
        branches=[
            {"set": {"algo.kl.coef": 1.0}},
            {
                "set": {
                    **lm,
                    "reward": {"type": "callable", "target": "flaky_reward:score"},
                    "utility": "same",
                    "algo.kl.coef": 1.0,
                }
            },
        ],
        slurm={"accelerate_config": "single_gpu"},
    )
    assert main(["sweep", str(f), "--backend", "slurm", "--quiet"]) == 0
    job = job_id(capsys.readouterr().out)
    wait_for(cluster, job)
    root = cwd / "runs" / "flaky"

    assert main(["status", str(root)]) == 0
    cap = capsys.readouterr()
    assert "done: 1" in cap.out and "failed: 1" in cap.out
    err_log = root / "logs" / f"{job}_1.err"
    assert "FAILED #1" in cap.err and f"log: {err_log}" in cap.err and "the reward module is broken" in cap.err
    assert "the reward module is broken" in err_log.read_text()
    assert "--resume" in cap.out

    (mods / "flaky_reward.py").write_text(
        "def score(prompts, completions):\n    return [float(len(c)) for c in completions]\n"
    )
    assert main(["sweep", str(f), "--backend", "slurm", "--resume", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "--array=1 " in out and "1 failed, 0 missing" in out
    jobs = json.loads((root / "slurm_jobs.json").read_text())
    assert [j["array"] for j in jobs] == ["0-1", "1"] and list(jobs[1]["points"]) == ["1"]
    job2 = jobs[1]["job_id"]
    wait_for(cluster, job2)
    assert "accelerate launch --config_file" in (root / "logs" / f"{job2}_1.out").read_text()

    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "done: 2" in out and "closed as FINISHED" in out  # the parent run, reopened by --resume
    df = pd.read_csv(root / "results.csv")
    assert set(df["status"]) == {"done"}


@pytest.mark.slurm
def test_a_usr1_warning_is_forwarded_and_the_task_requeues_itself(cluster, tmp_path):
    """By hand, as a user would: `sbatch --array=0 slurm/sweep_array.sbatch DIR`, with a stand-in
    point (launch.env's GOODHART_BIN) that follows pipeline/train/preemption.py's contract."""
    d = tmp_path / "sweep"
    d.mkdir()
    fake = tmp_path / "fake_point.py"
    fake.write_text(f"""#!{os.sys.executable}
import os, sys, time
from pathlib import Path
from goodhart.pipeline.train import preemption as preempt
d, restart = Path(sys.argv[2]), int(os.environ.get("SLURM_RESTART_COUNT", "0"))
with open(d / "runs.txt", "a") as f:
    f.write(f"{{sys.argv[1]}} {{sys.argv[3]}} restart={{restart}} threads={{os.environ['OMP_NUM_THREADS']}}\\n")
if restart == 0:
    preempt.install_handler()
    (d / "ready").touch()
    t0 = time.time()
    while not preempt.requested() and time.time() - t0 < 60:
        time.sleep(0.05)          # a training step
    preempt.exit_for_requeue()    # (after saving a checkpoint)
print("resumed and finished")
""")
    fake.chmod(0o755)
    (d / "launch.env").write_text(f"GOODHART_BIN={fake}\nGOODHART_MAX_REQUEUES=2\n")
    env = {**cluster.env, "PYTHONPATH": str(REPO)}
    r = sbatch(env, tmp_path, "--array=0", str(SCRIPT), str(d))
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    t0 = time.time()
    while not (d / "ready").exists():
        assert time.time() - t0 < 60, (d / "logs").exists() and list((d / "logs").iterdir())
        time.sleep(0.1)
    cluster.run("scancel", "--batch", "--signal=USR1", f"{job}_0")  # what SLURM sends 120 s before the limit
    wait_for(cluster, job, timeout=90)

    runs = (d / "runs.txt").read_text().splitlines()
    assert runs == ["run-point 0 restart=0 threads=1", "run-point 0 restart=1 threads=1"]
    log = (d / "logs" / f"{job}_0.out").read_text()
    assert "got SIGUSR1: forwarding" in log and "point exited with 75" in log and "requeueing" in log
    assert "resumed and finished" in log
    info = show_job(cluster, f"{job}_0")
    assert "JobState=COMPLETED" in info and "Restarts=1" in info


@pytest.mark.slurm
def test_tasks_that_end_without_a_result_are_failed(cluster, tmp_path, capsys):
    """No sacct here (no slurmdbd): a task that died before the point could write error.json is
    named by `scontrol show job` (FAILED, exit 127); a job the scheduler no longer knows, with
    no result and no error on disk, is lost. Both are failed, with their logs."""
    root = tmp_path / "lost"
    for pid in ("p0", "p1", "p2"):
        (root / "points" / pid).mkdir(parents=True)
    done = {"point_id": "p2", "status": "done", "x": 1.0, "kl": 0.0, "reward/proxy": 0.0, "reward/utility": 0.0}
    done.update({"gain/proxy": 0.0, "gain/utility": 0.0})  # a valid result: its numbers, finite
    done.update({"algo": "tilt", "error_law": "gaussian x1", "x_name": "beta"})  # and what rows are grouped by
    (root / "points" / "p2" / "result.json").write_text(json.dumps(done))
    (root / "points.json").write_text(json.dumps([{"index": i, "id": f"p{i}", "overrides": {}} for i in range(3)]))
    (root / "launch.env").write_text("GOODHART_BIN=/nonexistent/goodhart\n")  # the task cannot start the point
    r = sbatch(cluster.env, tmp_path, "--array=1", str(SCRIPT), str(root))
    job = r.stdout.strip()
    wait_for(cluster, job, timeout=60)
    (root / "slurm_jobs.json").write_text(
        json.dumps(
            [
                {"job_id": "987654", "array": "0,2", "points": {"0": "p0", "2": "p2"}},
                {"job_id": job, "array": "1", "points": {"1": "p1"}},
            ]
        )
    )
    assert main(["status", str(root)]) == 0
    cap = capsys.readouterr()
    assert "done: 1" in cap.out and "failed: 2" in cap.out
    # 987654 never ran here: no log exists, so none is named
    assert "never started: no result, no error, no log" in cap.err and "987654_0.err" not in cap.err
    assert "task ended FAILED (exit 127:0) without a result" in cap.err
    assert f"log: {root / 'logs' / f'{job}_1.err'}" in cap.err  # this one ran: its log is named
    assert "No such file" in (root / "logs" / f"{job}_1.err").read_text()


def test_a_task_cancelled_while_pending_is_said_so_and_names_no_log(cluster, tmp_path, capsys):
    """scancel of a held (pending) task: it never started, so it wrote no log; status says it
    was cancelled before starting and names no log file."""
    root = tmp_path / "held"
    (root / "points" / "p0").mkdir(parents=True)
    (root / "points.json").write_text(json.dumps([{"index": 0, "id": "p0", "overrides": {}}]))
    logs = root / "logs"
    r = sbatch(
        cluster.env,
        tmp_path,
        "--hold",
        "--array=0",
        f"--output={logs}/%A_%a.out",
        f"--error={logs}/%A_%a.err",
        str(SCRIPT),
        str(root),
    )
    job = r.stdout.strip()
    assert r.returncode == 0 and job, r.stderr
    (root / "slurm_jobs.json").write_text(json.dumps([{"job_id": job, "array": "0", "points": {"0": "p0"}}]))
    cluster.run("scancel", job)
    wait_for(cluster, job, timeout=60)
    assert main(["status", str(root)]) == 0
    cap = capsys.readouterr()
    assert "failed: 1" in cap.out
    assert "cancelled before it started (no log)" in cap.err, cap.err
    assert "log:" not in cap.err and not (logs.exists() and list(logs.iterdir()))


def test_sacct_output_is_read_when_accounting_is_on(tmp_path, monkeypatch):
    """Parsing only: a stand-in `sacct` on PATH prints what SLURM's prints with -n -P -X."""
    from goodhart.pipeline.cluster.slurm import final_states

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text(
        "#!/bin/sh\ncat <<'EOF'\n12_0|COMPLETED|0:0\n12_1|TIMEOUT|0:15\n"
        "12_2|CANCELLED by 0|0:0\n12_[3-5%2]|PENDING|0:0\nEOF\n"
    )
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    got = final_states(["12"])
    assert got[("12", 1)] == ("TIMEOUT", "0:15") and got[("12", 2)][0] == "CANCELLED"
    assert got[("12", 0)] == ("COMPLETED", "0:0") and got[("12", 5)][0] == "PENDING"


# ---------------------------------------------------------------------------------------------
# Guards (no scheduler needed)
# ---------------------------------------------------------------------------------------------
HOSTILE = ["$(touch PWNED)", "; rm -rf ~", "`touch PWNED`", "a b", "x\ny", "--partition=evil"]


@pytest.mark.parametrize("key", ["partition", "account", "qos", "time", "mem", "gpu_type", "job_name"])
@pytest.mark.parametrize("value", HOSTILE[:4])
def test_hostile_slurm_values_in_the_sweep_file_are_refused_naming_the_key(key, value, in_tmp, capsys):
    f = write_sweep(in_tmp, "evil", slurm={key: value, "allow_sqlite": True})
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"slurm.{key}" in err or f"{key} =" in err, err
    assert not list(in_tmp.rglob("PWNED")) and not (in_tmp / "runs").exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["$(touch PWNED)"],
        ["--constraint=a100; rm -rf ~"],
        ["--begin=now`touch PWNED`"],
        ["--wrap=touch PWNED"],
        ["--output=/tmp/x"],
        ["--comment=a b"],
    ],
)
def test_hostile_extra_sbatch_args_are_refused(extra, in_tmp, capsys):
    f = write_sweep(in_tmp, "evil", slurm={"extra_args": extra, "allow_sqlite": True})
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run"]) == 2
    assert "extra_args" in capsys.readouterr().err
    assert not list(in_tmp.rglob("PWNED"))


def test_hostile_flags_sweep_names_and_unknown_keys_are_refused(in_tmp, capsys):
    f = write_sweep(in_tmp, "ok", slurm={"allow_sqlite": True})
    for flags in (
        ["--partition", "$(touch PWNED)"],
        ["--account", "; rm -rf ~"],
        ["--sbatch-arg=;touch PWNED"],
        ["--time", "1h"],
        ["--mem", "lots"],
    ):
        assert main(["sweep", str(f), "--backend", "slurm", "--dry-run", *flags]) == 2, flags
        assert "slurm settings" in capsys.readouterr().err
    bad_name = in_tmp / "bad.yaml"
    bad_name.write_text(yaml.safe_dump({"name": "x; rm -rf ~", "set": DIST}))
    assert main(["sweep", str(bad_name), "--backend", "slurm", "--dry-run"]) == 2
    assert "name" in capsys.readouterr().err
    f2 = write_sweep(in_tmp, "typo", slurm={"partitoin": "gpu"})
    assert main(["sweep", str(f2), "--backend", "slurm", "--dry-run"]) == 2
    assert "partitoin" in capsys.readouterr().err
    assert not list(in_tmp.rglob("PWNED")) and not (in_tmp / "runs").exists()


def test_dry_run_prints_script_and_command_and_quotes_what_enters_the_script(in_tmp, capsys):
    """A path that reaches the task script (the accelerate config) is shlex-quoted in launch.env:
    sourcing it gives the literal path back and runs nothing."""
    import shlex

    acc = in_tmp / "acc $(touch PWNED) ; x.yaml"
    acc.write_text((configs_dir() / "accelerate" / "single_gpu.yaml").read_text())
    f = write_sweep(
        in_tmp,
        "dry",
        grid={"algo.kl.coef": [1.0, 2.0]},
        slurm={
            "partition": "gpu",
            "account": "lab-1",
            "time": "1-00:00:00",
            "gpus": 1,
            "gpu_type": "a100",
            "cpus_per_task": 4,
            "mem": "16G",
            "max_concurrent": 2,
            "accelerate_config": str(acc),
            "extra_args": ["--constraint=a100&ib", "--exclusive"],
            "allow_sqlite": True,
        },
    )
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run", "--qos", "high"]) == 0
    out = capsys.readouterr().out
    assert SCRIPT.read_text() in out
    cmd = next(l for l in out.splitlines() if l.startswith("sbatch "))
    argv = shlex.split(cmd)
    root = in_tmp / "runs" / "dry"
    assert argv[:3] == ["sbatch", "--parsable", "--array=0-1%2"]
    for opt in (
        "--partition=gpu",
        "--account=lab-1",
        "--qos=high",
        "--time=1-00:00:00",
        "--gres=gpu:a100:1",
        "--cpus-per-task=4",
        "--mem=16G",
        "--constraint=a100&ib",
        "--exclusive",
        "--open-mode=append",
        f"--output={root}/logs/%A_%a.out",
        f"--error={root}/logs/%A_%a.err",
    ):
        assert opt in argv, opt
    assert argv[-2:] == [str(root / "sweep_array.sbatch"), str(root)]
    assert not root.exists()  # a dry run writes nothing

    env_text = out.split(f"# {root / 'launch.env'}:\n", 1)[1].split("\n\n", 1)[0]
    envfile = in_tmp / "launch.env"
    envfile.write_text(env_text)
    r = subprocess.run(
        ["bash", "-c", 'set -u; source "$1"; printf %s "$GOODHART_ACCELERATE_CONFIG"', "_", str(envfile)],
        cwd=in_tmp,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout == str(root / "accelerate.yaml")
    assert not list(in_tmp.rglob("PWNED"))


def test_sqlite_tracking_is_refused_unless_opted_in(in_tmp, capsys, monkeypatch):
    monkeypatch.setattr("goodhart.pipeline.cluster.slurm.submit", lambda argv: pytest.fail("sbatch was called"))
    f = write_sweep(in_tmp, "lite")
    assert main(["sweep", str(f), "--backend", "slurm"]) == 2
    err = capsys.readouterr().err
    assert "SQLite" in err and "goodhart server" in err and "--allow-sqlite" in err and err.count("\n") == 1
    assert not (in_tmp / "runs" / "lite").exists()
    # A dry run submits nothing: it needs no tracking server, and says what a submission would refuse.
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# note: a real submission would be refused:" in out and "goodhart server" in out
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run", "--allow-sqlite"]) == 0
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run", "tracking.enabled=false"]) == 0
    assert "# note:" not in capsys.readouterr().out


def test_a_dry_run_needs_no_live_tracking_server_and_names_accelerate_by_full_path(in_tmp, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    f = write_sweep(in_tmp, "nosrv")
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    env = dict(line.split("=", 1) for line in out.splitlines() if line.startswith(("GOODHART_BIN=", "ACCELERATE_BIN=")))
    for key in ("GOODHART_BIN", "ACCELERATE_BIN"):
        assert Path(env[key]).is_absolute() and os.access(env[key], os.X_OK), env


def test_a_multi_process_accelerate_config_is_refused_for_single_process_optimizers(in_tmp, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    f = write_sweep(in_tmp, "acc", slurm={"accelerate_config": "multi_gpu_ddp", "gpus": 8})
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run"]) == 2
    assert "starts 8 processes" in capsys.readouterr().err
    f = write_sweep(in_tmp, "acc1", slurm={"accelerate_config": "single_gpu", "gpus": 1})
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run"]) == 0


def test_the_shipped_slurm_sweep_file_is_valid(in_tmp, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    f = configs_dir() / "sweep" / "slurm_distributional.yaml"
    assert main(["sweep", str(f), "--backend", "slurm", "--dry-run"]) == 0
    assert "--array=0-67%16" in capsys.readouterr().out


def test_array_specs_round_trip():
    from goodhart.pipeline.cluster.slurm import array_spec, parse_array

    assert array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert array_spec([3], 2) == "3%2" and array_spec([1, 3]) == "1,3"
    for idx in ([0], [0, 1, 2], [1, 3, 4, 9], list(range(0, 40, 3))):
        assert parse_array(array_spec(idx, 4)) == idx


def test_preempt_handler_turns_signals_into_a_flag():
    import signal

    from goodhart.pipeline.train import preemption as preempt

    preempt.reset()
    before = signal.getsignal(signal.SIGUSR1)
    preempt.install_handler()
    try:
        assert not preempt.requested()
        os.kill(os.getpid(), signal.SIGUSR1)
        t0 = time.time()
        while not preempt.requested() and time.time() - t0 < 5:
            time.sleep(0.01)
        assert preempt.requested() and preempt.reason() == "SIGUSR1"
        with pytest.raises(SystemExit) as e:
            preempt.exit_for_requeue()
        assert e.value.code == preempt.EXIT_REQUEUE == 75
    finally:
        preempt.uninstall_handler()
        preempt.reset()
    assert signal.getsignal(signal.SIGUSR1) == before
    preempt.request("budget")
    assert preempt.requested() and preempt.reason() == "budget"
    preempt.reset()


def test_the_sbatch_script_asks_for_requeue_and_a_warning_signal():
    text = SCRIPT.read_text()
    assert "#SBATCH --requeue" in text and "#SBATCH --signal=B:USR1@120" in text
    assert 'run-point "$SWEEP_DIR" "$INDEX"' in text and "scontrol requeue" in text
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
