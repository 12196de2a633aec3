"""Regression tests for issue 23 ("nothing stale, nothing torn, nothing slow to say no"): a
point whose reward changed is not done; a point is done only when every file it names reads;
torn or foreign sweep directories, OS errors and bad input are one line. The process-level
cases (kill -9 orphans, a failing tracking server) are in tests/test_interrupts.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir

DIST = {"reward": "distributional", "sampling.n": 64, "prompts.n_eval": 4, "eval.bootstrap": 20}


def write_sweep(where: Path, name: str = "r", sets: dict | None = None, **body) -> Path:
    spec = {"name": name, "base": str(configs_dir() / "base.yaml"), "set": sets or DIST, **body}
    p = where / f"{name[:100]}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def one_line_error(capsys, code: int, *expect: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("goodhart: error:"), err
    for e in expect:
        assert e in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# 1. Editing a reward invalidates the points it scored
# ---------------------------------------------------------------------------------------------
def _callable_sweep(in_tmp, monkeypatch, small_model_dir):
    """A two-point best-of-n sweep scored by the callable flipped:score (written by the test)."""
    monkeypatch.syspath_prepend(str(in_tmp))
    sets = {
        "model.path": str(small_model_dir),
        "reward": {"type": "callable", "target": "flipped:score"},
        "utility": "same",
        "sampling.n": 4,
        "sampling.max_new_tokens": 4,
        "prompts.n_eval": 2,
        "prompts.n_train": 2,
        "eval.bootstrap": 10,
        "tracking.enabled": False,
        "algo": "bon",
    }
    return in_tmp / "flipped.py", write_sweep(in_tmp, sets=sets, grid={"algo.n": [1, 2]})


def test_flipping_a_callables_sign_reruns_its_finished_points(in_tmp, capsys, monkeypatch, small_model_dir):
    mod, f = _callable_sweep(in_tmp, monkeypatch, small_model_dir)

    def run(sign: str) -> tuple[str, list[float]]:
        mod.write_text(f"def score(prompts, completions):\n    return [{sign}(1.0 + len(c)) for c in completions]\n")
        sys.modules.pop("flipped", None)
        capsys.readouterr()
        assert main(["sweep", str(f), "--quiet"]) == 0
        cap = capsys.readouterr()
        rows = [json.loads(p.read_text()) for p in sorted((in_tmp / "runs" / "r" / "points").glob("*/result.json"))]
        return cap.out + cap.err, [r["reward/proxy"] for r in rows]

    _, plus = run("")
    out, minus = run("-")
    assert "2 point(s): 2 run, 0 already done" in out and out.count("its reward changed since it ran") == 2
    assert all(m < 0 < p for p, m in zip(plus, minus))
    assert len(list((in_tmp / "runs" / "r" / "points").glob("*/result.json.stale"))) == 2
    out, again = run("-")  # unchanged now: done
    assert "2 already done" in out and again == minus


def test_status_check_rewards_marks_points_whose_callable_changed_stale(in_tmp, capsys, monkeypatch, small_model_dir):
    mod, f = _callable_sweep(in_tmp, monkeypatch, small_model_dir)
    root = str(in_tmp / "runs" / "r")

    def write(sign: str) -> None:
        mod.write_text(f"def score(prompts, completions):\n    return [{sign}(1.0 + len(c)) for c in completions]\n")
        sys.modules.pop("flipped", None)

    def status(*flags: str) -> str:
        sys.modules.pop("flipped", None)  # each CLI call is a fresh process
        capsys.readouterr()
        assert main(["status", root, *flags]) == 0
        return capsys.readouterr().out

    write("")
    assert main(["sweep", str(f), "--quiet"]) == 0
    out = status()  # fresh points: nothing wrong, and the callable is not imported
    assert "done: 2" in out and "stale" not in out and "flipped" not in sys.modules
    assert "2 finished point(s) are scored by callable flipped:score" in out and "--check-rewards" in out
    out = status("--check-rewards")
    assert "done: 2" in out and "stale" not in out and "note:" not in out

    write("-")  # the sign flipped: both points are stale, but only the full check can tell
    out = status()
    assert "done: 2" in out and "stale" not in out and "--check-rewards" in out
    out = status("--check-rewards")
    assert "stale: 2" in out and "done:" not in out
    assert out.count("reward changed since it ran: identity") == 2
    assert [ln for ln in out.splitlines() if ln.startswith("stale (reward changed): 2 finished point(s)")]

    capsys.readouterr()
    assert main(["sweep", str(f), "--quiet"]) == 0  # the sweep agrees: it reruns both
    assert "2 point(s): 2 run, 0 already done" in capsys.readouterr().out
    out = status("--check-rewards")
    assert "done: 2" in out and "stale" not in out


def test_plain_status_flags_a_changed_identity_it_can_compute_without_user_code(in_tmp, capsys, monkeypatch):
    f = write_sweep(in_tmp, sets={**DIST, "tracking.enabled": False}, grid={"algo.kl.coef": [0.5, 1.0]})
    assert main(["sweep", str(f), "--quiet"]) == 0
    root = in_tmp / "runs" / "r"
    capsys.readouterr()
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "done: 2" in out and "stale" not in out and "note:" not in out  # built-in rewards: nothing to check
    assert main(["report", str(root), "--no-mlflow"]) == 0
    assert "warning:" not in capsys.readouterr().out
    # A result recorded under another reward identity (as a checkpoint reward retrained in place
    # would leave): plain status computes the built-in config's identity and flags the point.
    res = sorted(root.glob("points/*/result.json"))[0]
    row = json.loads(res.read_text())
    row["reward_identity"] = "0123456789abcdef"
    res.write_text(json.dumps(row))
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "done: 1" in out and "stale: 1" in out and "identity 0123456789abcdef ->" in out
    assert "stale (reward changed): 1 finished point(s)" in out
    # ... and a report over it says that its numbers for that point are the old reward's
    assert main(["report", str(root), "--no-mlflow"]) == 0
    assert "warning: 1 point(s) in this report were scored by a reward that has changed" in capsys.readouterr().out
    # A SLURM sweep's status (its table comes from the queue) gets the same check after its table.
    from goodhart.pipeline.cli import cluster

    monkeypatch.setattr(cluster, "status_slurm", lambda root: 0)
    (root / "slurm_jobs.json").write_text("[]")
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"stale {res.parent.name}: reward changed since it ran" in out
    assert "stale (reward changed): 1 finished point(s)" in out


def test_a_result_from_before_the_identity_check_stays_done_for_builtin_rewards(in_tmp, capsys):
    f = write_sweep(in_tmp)
    assert main(["sweep", str(f), "--quiet"]) == 0
    res = next((in_tmp / "runs" / "r" / "points").glob("*/result.json"))
    row = json.loads(res.read_text())
    row.pop("reward_identity")
    res.write_text(json.dumps(row))
    capsys.readouterr()
    assert main(["sweep", str(f), "--quiet"]) == 0
    assert "0 run, 1 already done" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# 2. A point is done only when every file it names reads
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("victim", ["per_prompt", "pool"])
def test_a_torn_npz_makes_its_point_pending_and_report_never_tracebacks(in_tmp, capsys, victim):
    f = write_sweep(in_tmp, grid={"algo.kl.coef": [0.5, 1.0, 2.0]})
    assert main(["sweep", str(f), "--quiet"]) == 0
    root = in_tmp / "runs" / "r"
    npz = sorted(root.glob("points/*/per_prompt.npz"))[0] if victim == "per_prompt" else next(root.glob("pools/*.npz"))
    npz.write_bytes(npz.read_bytes()[:100])
    capsys.readouterr()
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "invalid" in out and "unreadable" in out
    assert main(["report", str(root), "--no-mlflow"]) in (0, 2)
    assert "Traceback" not in capsys.readouterr().err
    assert main(["sweep", str(f), "--quiet"]) == 0
    cap = capsys.readouterr()
    n_bad = 1 if victim == "per_prompt" else 3
    assert f"{n_bad} run, {3 - n_bad} already done" in cap.out, cap.out
    assert main(["status", str(root)]) == 0 and "done: 3" in capsys.readouterr().out
    assert main(["report", str(root), "--no-mlflow"]) == 0


# ---------------------------------------------------------------------------------------------
# 9. A missing plug-in (or callable) is a config error before anything runs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reward,expect",
    [
        ({"type": "plugin", "name": "no-such-plugin"}, "no reward plug-in named 'no-such-plugin'"),
        ({"type": "callable", "target": "no_such_module_xyz:f"}, "cannot import module 'no_such_module_xyz'"),
    ],
)
def test_a_missing_reward_is_one_line_before_the_sweep_opens_anything(in_tmp, capsys, reward, expect):
    sets = {"reward": reward, "utility": "sentiment", "sampling.n": 4, "prompts.n_eval": 2}
    f = write_sweep(in_tmp, sets=sets, grid={"algo.kl.coef": [1.0, 2.0]})
    one_line_error(capsys, main(["sweep", str(f), "--quiet"]), expect)
    assert not (in_tmp / "mlflow.db").exists() and not (in_tmp / "runs").exists()


# ---------------------------------------------------------------------------------------------
# 5. A tracking server that is up but fails: one line within seconds
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def bad_server():
    """A loopback HTTP server answering {path prefix: status}; '' is every other path."""
    import http.server
    import threading

    codes: dict[str, int] = {}

    class H(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            code = next((c for p, c in codes.items() if p and self.path.startswith(p)), codes.get("", 200))
            body = b"OK" if code == 200 else b"nope"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", codes
    srv.shutdown()


@pytest.mark.parametrize(
    "codes,expect",
    [({"": 403}, "API answers HTTP 403"), ({"/health": 200, "": 503}, "API answers HTTP 503"), ({"": 500}, "HTTP 500")],
)
def test_a_tracking_server_that_is_up_but_fails_is_one_line_within_seconds(in_tmp, capsys, bad_server, codes, expect):
    import time

    uri, table = bad_server
    table.update(codes)
    f = write_sweep(in_tmp, grid={"algo.kl.coef": [1.0]})
    one_line_error(capsys, main(["sweep", str(f), "--quiet", f"tracking.uri={uri}"]), expect, uri)
    assert not list((in_tmp / "runs").glob("r/points/*/result.json"))
    from goodhart.pipeline.errors import TrackingError
    from goodhart.pipeline.sweeps.tracking import check_store

    t0 = time.monotonic()  # imports done: the check itself is one try, not MLflow's minutes of retries
    with pytest.raises(TrackingError):
        check_store(uri)
    assert time.monotonic() - t0 < 5


# ---------------------------------------------------------------------------------------------
# 6. Torn or foreign sweep directories: one line naming the file
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    import os

    where = tmp_path_factory.mktemp("finished")
    old = os.getcwd()
    os.chdir(where)
    try:
        f = write_sweep(where, sets={**DIST, "tracking.enabled": False}, grid={"algo.kl.coef": [0.5, 1.0, 2.0]})
        assert main(["sweep", str(f), "--quiet"]) == 0
    finally:
        os.chdir(old)
    return where / "runs" / "r"


POINTS_DAMAGE = {
    "truncated": lambda t: t[: len(t) // 2],
    "a mapping": lambda t: '{"points": []}',
    "strings": lambda t: '["a", "b"]',
    "no overrides": lambda t: json.dumps([{k: v for k, v in e.items() if k != "overrides"} for e in json.loads(t)]),
    "path id": lambda t: json.dumps([{**e, "id": "../../etc"} for e in json.loads(t)]),
    "not utf-8": lambda t: "\udcff",
}


@pytest.mark.parametrize("damage", list(POINTS_DAMAGE))
@pytest.mark.parametrize("verb", ["status", "report", "alarm-eval", "run-point"])
def test_a_torn_or_foreign_points_json_is_one_line_naming_it(tmp_path, finished_sweep, capsys, damage, verb):
    import shutil

    root = tmp_path / "r"
    shutil.copytree(finished_sweep, root)
    f = root / "points.json"
    f.write_bytes(POINTS_DAMAGE[damage](f.read_text()).encode("utf-8", "surrogateescape"))
    argv = {"report": ["report", str(root), "--no-mlflow"], "run-point": ["run-point", str(root), "0"]}.get(
        verb, [verb, str(root)]
    )
    capsys.readouterr()
    one_line_error(capsys, main(argv), "points.json", "re-run `goodhart sweep`")


@pytest.mark.parametrize(
    "table,expect",
    [
        ("", "is empty or torn"),
        ("a,b\n1,2\n", "has no column"),
        ('point_id,status\n"x,done\n', "is empty or torn"),
    ],
)
@pytest.mark.parametrize("verb", ["report", "alarm-eval"])
def test_an_empty_or_foreign_results_table_is_one_line(tmp_path, capsys, table, expect, verb):
    d = tmp_path / "bare"
    d.mkdir()
    (d / "results.csv").write_text(table)
    capsys.readouterr()
    argv = ["report", str(d), "--no-mlflow"] if verb == "report" else ["alarm-eval", str(d)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "results.csv" in err or "points.json" in err or "no results" in err, err


def test_result_rows_of_another_version_are_invalid_not_a_traceback(tmp_path, finished_sweep, capsys):
    import shutil

    root = tmp_path / "r"
    shutil.copytree(finished_sweep, root)
    for res in root.glob("points/*/result.json"):
        row = json.loads(res.read_text())
        row.pop("error_law")
        res.write_text(json.dumps(row))
    capsys.readouterr()
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "invalid: 3" in out and "'error_law' is missing" in out
    one_line_error(capsys, main(["report", str(root), "--no-mlflow"]), "no finished points")
    one_line_error(capsys, main(["alarm-eval", str(root)]), "re-run the sweep")


# ---------------------------------------------------------------------------------------------
# 10. Bad input and limits
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv,expect",
    [
        (["report", ".", "--near-base", "nan"], "--near-base: expected a finite number"),
        (["report", ".", "--share-floor", "-5"], "--share-floor: expected a fraction in [0, 1]"),
        (["report", ".", "--min-proxy-gain", "inf"], "--min-proxy-gain: expected a finite number"),
        (["alarm-eval", ".", "--share", "-1"], "--share: expected a number > 0"),
        (["alarm-eval", ".", "--alpha", "nan"], "--alpha: expected a finite number"),
        (["alarm-eval", ".", "--alpha", "2"], "--alpha: expected a fraction"),
    ],
)
def test_out_of_range_thresholds_are_refused_by_the_parser(argv, expect, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and expect in capsys.readouterr().err


@pytest.mark.parametrize("extra", ["--export-file=/tmp/env", "--get-user-env", "--get-user-env=10L", "--export-f=x"])
def test_sbatch_options_that_set_the_tasks_environment_are_refused(extra):
    from pydantic import ValidationError

    from goodhart.pipeline.config.slurm import SlurmConfig

    with pytest.raises(ValidationError, match="is set by goodhart itself"):
        SlurmConfig(extra_args=[extra])


BOMB = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


@pytest.mark.parametrize(
    "content,expect",
    [
        (b"name: x\nseed: 1\nseed: 2\n", "duplicate key 'seed' (lines 2 and 3)"),
        (b"reward:\n  type: sentiment\n  type: length\n", "duplicate key 'type'"),
        (BOMB.encode(), "expands to more than 1,000,000 values"),
        (b"name: caf\xe9\n", "not UTF-8 text"),
    ],
)
def test_duplicate_keys_alias_bombs_and_non_utf8_yaml_are_one_line(tmp_path, capsys, content, expect):
    import time

    f = tmp_path / "c.yaml"
    f.write_bytes(content)
    t0 = time.monotonic()
    one_line_error(capsys, main(["config", "show", str(f)]), str(f), expect)
    assert time.monotonic() - t0 < 5


def test_a_huge_grid_is_refused_before_it_is_expanded(in_tmp, capsys):
    import time

    f = write_sweep(in_tmp, grid={"seed": list(range(100)), "algo.kl.coef": list(range(1, 101)), "sampling.n": [8, 16]})
    one_line_error(capsys, main(["sweep", str(f), "--dry-run"]), "expands to 20,000 points, more than the 10,000")
    from goodhart.pipeline.errors import ConfigError
    from goodhart.pipeline.sweeps.spec import expand_selected, load_sweep

    sweep, base = load_sweep(f)
    t0 = time.monotonic()  # refused from the grid's lengths, not after validating 20,000 configs
    with pytest.raises(ConfigError):
        expand_selected(sweep, base)
    assert time.monotonic() - t0 < 1


# ---------------------------------------------------------------------------------------------
# 7. OS errors: checked before any work, one line
# ---------------------------------------------------------------------------------------------
def _refuse_writes(monkeypatch, code: int) -> None:
    """Writes into a directory fail as on a read-only file system (root ignores chmod)."""
    import errno
    import tempfile

    from goodhart.pipeline import io

    real = tempfile.mkstemp

    def mkstemp(*a, **kw):
        raise OSError(code, os_strerror(code), str(kw.get("dir", "?")))

    def os_strerror(c):
        import os

        return os.strerror(c)

    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)
    del real, errno


@pytest.mark.parametrize("code,expect", [(30, "read-only file system"), (13, "not writable")])
def test_an_unwritable_output_directory_is_one_line_before_anything_runs(in_tmp, capsys, monkeypatch, code, expect):
    f = write_sweep(in_tmp)
    _refuse_writes(monkeypatch, code)
    one_line_error(capsys, main(["sweep", str(f), "--quiet"]), "output directory", expect)
    assert not (in_tmp / "mlflow.db").exists()


def test_output_paths_that_are_files_are_one_line_before_any_work(in_tmp, capsys, finished_sweep):
    blocker = in_tmp / "afile"
    blocker.write_text("x")
    one_line_error(capsys, main(["report", str(finished_sweep), "--out", str(blocker), "--no-mlflow"]), "report --out")
    one_line_error(
        capsys, main(["train-rm", f"--out={blocker / 'rm'}", "n_pairs=8"]), "train-rm --out", "not a directory"
    )
    one_line_error(
        capsys, main(["probe", "--mode", "base", str(configs_dir() / "base.yaml"), f"probe.dir={blocker}"]), "probe.dir"
    )


def test_a_missing_train_rm_backbone_path_is_one_line_before_sampling(in_tmp, capsys):
    one_line_error(capsys, main(["train-rm", "backbone.path=/no/such/backbone"]), "backbone.path /no/such/backbone")


@pytest.fixture()
def empty_hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline, no proxy: nothing can come from the hub."""
    from huggingface_hub import constants

    from goodhart.pipeline.base.models import PROXY_VARS

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for k in (*PROXY_VARS, "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    return cache


def test_an_uncached_hub_backbone_is_one_line_within_seconds_before_sampling(
    in_tmp, capsys, monkeypatch, empty_hf_cache
):
    import socket
    import time

    from goodhart.pipeline.train import reward_model

    sampled = []
    monkeypatch.setattr(reward_model, "train_reward_model", lambda *a, **k: sampled.append(a))
    t0 = time.perf_counter()
    line = one_line_error(
        capsys,
        main(["train-rm", "backbone.path=someorg/somemodel"]),
        "backbone.path someorg/somemodel",
        "HF_HUB_OFFLINE=1",
    )
    assert time.perf_counter() - t0 < 10 and not sampled and "hf download someorg/somemodel" in line
    assert not (in_tmp / "runs").exists()
    # The hub not switched off but unreachable (a closed port on this machine): the same, said so.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again once the socket is
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    one_line_error(
        capsys, main(["train-rm", "policy.path=someorg/somemodel"]), "policy.path someorg/somemodel", "unreachable"
    )
    assert not sampled


def test_hub_ids_in_the_local_cache_pass_the_check_and_a_sweep_checks_model_paths_first(in_tmp, capsys, empty_hf_cache):
    from goodhart.pipeline.base.models import checkpoint_problem

    snap = empty_hf_cache / "models--someorg--cached" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (empty_hf_cache / "models--someorg--cached" / "refs").mkdir()
    (empty_hf_cache / "models--someorg--cached" / "refs" / "main").write_text("a" * 40)
    assert checkpoint_problem("someorg/cached", "model.path") is None  # offline, but cached: loads
    assert "HF_HUB_OFFLINE=1" in checkpoint_problem("someorg/notcached", "model.path")
    assert "no such directory" in checkpoint_problem("./not/here", "model.path")
    f = write_sweep(in_tmp, sets={"model.path": "someorg/notcached", "tracking.enabled": False})
    one_line_error(capsys, main(["sweep", str(f), "--quiet"]), "model.path someorg/notcached", "Hugging Face cache")
    assert not (in_tmp / "runs").exists()
    f = write_sweep(in_tmp, sets={"reward": {"type": "hf", "path": "someorg/rm"}, "utility": "same"})
    one_line_error(capsys, main(["sweep", str(f), "--quiet"]), "reward.path someorg/rm")
    assert not (in_tmp / "runs").exists() and not (in_tmp / "mlflow.db").exists()


def test_a_300_character_sweep_name_is_refused_even_in_a_dry_run(in_tmp, capsys):
    f = write_sweep(in_tmp, name="n" * 300)  # (the file itself is short-named below)
    f = f.rename(in_tmp / "long.yaml")
    one_line_error(capsys, main(["sweep", str(f), "--dry-run"]), "at most 120 characters")


def test_a_full_disk_stops_the_sweep_at_the_first_point(in_tmp, capsys, monkeypatch):
    import errno

    from goodhart.pipeline.sweeps import point

    f = write_sweep(in_tmp, sets={**DIST, "tracking.enabled": False}, grid={"algo.kl.coef": [0.5, 1.0, 2.0, 4.0]})
    calls = []

    def full(*a, **kw):
        calls.append(a)
        raise OSError(errno.ENOSPC, "No space left on device", "result.json")

    monkeypatch.setattr(point, "_run_point", full)
    one_line_error(capsys, main(["sweep", str(f), "--quiet"]), "the disk is full")
    assert len(calls) == 1


def test_leftover_temp_files_and_stale_running_markers_are_cleaned_on_rerun(in_tmp, capsys):
    import os
    import time

    f = write_sweep(in_tmp, sets={**DIST, "tracking.enabled": False}, grid={"algo.kl.coef": [0.5, 1.0]})
    assert main(["sweep", str(f), "--quiet"]) == 0
    root = in_tmp / "runs" / "r"
    pdir = next(root.glob("points/*"))
    old, fresh = root / ".results.csv.abc123.tmp", pdir / ".result.json.def456.tmp"
    old.write_text("torn")
    fresh.write_text("in progress")
    os.utime(old, (time.time() - 3600,) * 2)
    (pdir / "running.json").write_text(json.dumps({"pid": os.getpid(), "host": "", "started": 0}))
    assert main(["sweep", str(f), "--quiet"]) == 0
    assert not old.exists() and fresh.exists()  # a recent one may be a live writer's
    assert not (pdir / "running.json").exists()  # the point is done: its marker is stale


# ---------------------------------------------------------------------------------------------
# Model weights follow the umask
# ---------------------------------------------------------------------------------------------
def test_the_built_model_weights_follow_the_umask(small_model_dir):
    from goodhart.pipeline.io import current_umask

    want = 0o666 & ~current_umask()
    modes = {f.name: f.stat().st_mode & 0o777 for f in small_model_dir.iterdir() if f.is_file()}
    assert modes["model.safetensors"] == want and set(modes.values()) == {want}, modes


def test_follow_umask_opens_private_files_to_the_umask(tmp_path):
    import os

    from goodhart.pipeline.io import follow_umask

    d = tmp_path / "ckpt" / "sub"
    d.mkdir(parents=True)
    f = d / "model.safetensors"
    f.write_bytes(b"w")
    os.chmod(f, 0o600)
    os.chmod(d, 0o700)
    old = os.umask(0o027)
    try:
        follow_umask(tmp_path / "ckpt")
    finally:
        os.umask(old)
    assert f.stat().st_mode & 0o777 == 0o640 and d.stat().st_mode & 0o777 == 0o750


def test_an_empty_local_prompts_file_is_named_as_such(tmp_path):
    from goodhart.pipeline.base.prompts import load_prompts
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.errors import PromptError

    f = tmp_path / "prompts.jsonl"
    f.write_text("")
    cfg = load_config(None, [f"prompts.source={f}"])
    with pytest.raises(PromptError, match=r"prompts.source .*prompts.jsonl is empty"):
        load_prompts(cfg.prompts)


def test_probe_length_zero_names_the_key(capsys):
    code = main(["probe", "--mode", "base", str(configs_dir() / "base.yaml"), "probe.length=0"])
    one_line_error(capsys, code, "length = 0")


# ---------------------------------------------------------------------------------------------
# KL intervals stay in KL's range [0, log N]
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kls", [[0.0, 0.02], [0.69, 0.55]])
def test_a_kl_interval_over_two_seeds_stays_within_zero_and_log_n(kls):
    import math

    import pandas as pd

    from goodhart.eval import metrics as M
    from goodhart.eval.bootstrap import t_ci
    from goodhart.eval.goodhart import VerdictRule, aggregate_seeds

    rows = [
        {"error_law": "g", "algo": "tilt", "x_name": "beta", "x": 1.0, "seed": s, "point_id": f"p{s}", M.KL: k}
        for s, k in enumerate(kls)
    ]
    for r in rows:
        r.update({M.GAIN_PROXY: 0.1, M.GAIN_UTILITY: 0.1, M.KL_MAX: math.log(2)})
    pooled, _ = aggregate_seeds(pd.DataFrame(rows), None, VerdictRule())
    lo, hi = pooled[M.lo(M.KL)].iloc[0], pooled[M.hi(M.KL)].iloc[0]
    raw_lo, raw_hi = t_ci(pd.Series(kls).to_numpy(float), 0.95)[1:]
    assert raw_lo < 0 or raw_hi > math.log(2)  # the unclipped t interval leaves the range
    assert lo == max(raw_lo, 0.0) and hi == min(raw_hi, math.log(2))
    assert 0.0 <= lo <= pooled[M.KL].iloc[0] <= hi <= math.log(2)


def test_a_new_sqlite_store_appears_only_complete(tmp_path):
    """Created beside its name and renamed: a kill -9 during MLflow's schema creation leaves a
    `.creating-*` file the next run removes, never a half-made mlflow.db."""
    import sqlite3

    from goodhart.pipeline.sweeps.tracking import check_store

    db = tmp_path / "mlflow.db"
    (tmp_path / ".mlflow.db.creating-999999").write_bytes(b"half a schema")
    check_store(f"sqlite:///{db}")
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert {"experiments", "runs", "logged_models"} <= tables
    assert not list(tmp_path.glob(".mlflow.db.creating-*"))


def test_weights_that_do_not_load_are_one_line_naming_the_model_path(tmp_path, small_model_dir):
    """A torn (or refused, e.g. pickled) weights file: a ConfigError naming model.path, for a
    sweep point and for `goodhart probe` alike (both load through load_causal_lm)."""
    import shutil

    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.errors import ConfigError

    d = tmp_path / "m"
    shutil.copytree(small_model_dir, d)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:64])
    cfg = load_config(None, [f"model.path={d}"])
    with pytest.raises(ConfigError, match=r"model.path '.*m' could not be loaded as a causal LM"):
        load_causal_lm(cfg.model, progress=False)


def test_every_test_the_docs_name_exists():
    """A claim's test named as `FILE::NAME` (docs/reliability.md names one for each)
    is a test function of that file, in every doc that names tests so; `FILE::NAME[CASE]` names
    one case of a parametrized test, whose id must be a string in that file."""
    import ast
    import re

    repo = Path(__file__).resolve().parents[1]
    docs = [repo / "README.md", *sorted((repo / "docs").glob("*.md")), *sorted(repo.glob("*/README.md"))]
    named, missing = 0, []
    for doc in docs:
        for file, name, case in re.findall(r"(?:tests/)?(test_\w+\.py)::(\w+)(?:\[([^\]]+)\])?", doc.read_text()):
            named += 1
            path = repo / "tests" / file
            tree = ast.parse(path.read_text()) if path.is_file() else None
            defs = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)} if tree else set()
            if not name.startswith("test_") or name not in defs:
                missing.append(f"{doc.relative_to(repo)}: {file}::{name}")
            elif case and f'"{case}"' not in path.read_text():  # a parametrized case, named by its id
                missing.append(f"{doc.relative_to(repo)}: {file}::{name}[{case}]")
    assert named >= 30 and not missing, missing  # (reliability.md alone names over 30)


def test_a_point_whose_alarm_an_older_alarm_rule_computed_is_stale_and_runs_again(in_tmp, capsys):
    # The alarm rule changed (eval/alarm.py VERSION): a finished point keeps the old rule's level
    # and evidence, which would show as fresh. status and report say so; the sweep reruns it.
    from goodhart.eval import metrics as M
    from goodhart.eval.alarm import VERSION

    f = write_sweep(in_tmp, sets={**DIST, "tracking.enabled": False}, grid={"algo.kl.coef": [0.5, 1.0]})
    assert main(["sweep", str(f), "--quiet"]) == 0
    root = in_tmp / "runs" / "r"
    res = sorted(root.glob("points/*/result.json"))[0]
    row = json.loads(res.read_text())
    assert row[M.ALARM_VERSION] == VERSION
    level = row[M.ALARM_LEVEL]
    del row[M.ALARM_VERSION]  # as a row from before the version was kept (rule 2) leaves it
    row[M.ALARM_LEVEL] = "watch" if level != "watch" else "alarm"  # what the older rule said
    res.write_text(json.dumps(row))
    capsys.readouterr()
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "done: 1" in out and "stale: 1" in out and "alarm rule 2" in out
    assert "stale (alarm rule changed): 1 finished point(s)" in out
    assert main(["report", str(root), "--no-mlflow"]) == 0
    assert "warning: 1 point(s) in this report carry an alarm computed under an older alarm rule" in (
        capsys.readouterr().out
    )
    assert main(["sweep", str(f), "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "1 run, 1 already done" in cap.out and "its alarm was computed under alarm rule 2" in cap.err
    again = json.loads(res.read_text())
    assert again[M.ALARM_VERSION] == VERSION and again[M.ALARM_LEVEL] == level  # the current rule's, recomputed
    # as rows of a results table: an empty cell is no alarm (no level) or rule 2 (no version)
    from goodhart.pipeline.sweeps.point import alarm_stale

    nan = float("nan")
    assert alarm_stale({M.ALARM_LEVEL: nan, M.ALARM_VERSION: nan}) is None
    assert "alarm rule 2" in alarm_stale({M.ALARM_LEVEL: "quiet", M.ALARM_VERSION: nan})
    assert alarm_stale({M.ALARM_LEVEL: "quiet", M.ALARM_VERSION: float(VERSION)}) is None
    assert (res.parent / "result.json.stale").is_file()


def test_a_store_another_process_holds_locked_is_one_line_within_seconds_and_writes_nothing(
    in_tmp, capsys, monkeypatch
):
    """A SQLite store whose write lock another process holds (an open transaction in a `sqlite3`
    shell), where MLflow would retry for minutes and print six tracebacks: one line naming the
    holder's pid, after LOCK_WAIT seconds, before `sweep` writes its directory and before
    `report` builds anything."""
    import subprocess
    import sys
    import time

    from goodhart.pipeline.sweeps import tracking

    f = write_sweep(in_tmp, sets={**DIST, "tracking.enabled": True})
    assert main(["sweep", str(f), "--quiet"]) == 0  # a finished sweep with its parent run
    points = (in_tmp / "runs" / "r" / "points.json").read_text()
    db = in_tmp / "mlflow.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(db)!r}, isolation_level=None); c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(tracking, "LOCK_WAIT", 1.0)
        capsys.readouterr()
        for argv in (["sweep", str(f), "--quiet", "algo.kl.coef=2.0"], ["report", "runs/r"]):
            t0 = time.monotonic()
            line = one_line_error(capsys, main(argv), "is locked by another process")
            assert f"pid {holder.pid}" in line
            assert time.monotonic() - t0 < 15
        assert (in_tmp / "runs" / "r" / "points.json").read_text() == points  # the sweep wrote nothing
        assert not (in_tmp / "runs" / "r" / "report").exists()  # nor did the report
    finally:
        holder.kill()
        holder.wait()


def test_big_inputs_say_up_front_that_they_take_a_while(tmp_path, capsys, monkeypatch):
    """analyze of a large file and the expansion of a large sweep print one line to stderr before
    the work (thresholds lowered here: the real ones are 20 MiB and 5,000 points)."""
    from goodhart.pipeline.cli import analyze as cli_analyze
    from goodhart.pipeline.sweeps import spec

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_analyze, "BIG_FILE", 10)
    monkeypatch.setattr(spec, "SAY_SO", 1)
    f = write_sweep(tmp_path, sets={**DIST, "tracking.enabled": False}, grid={"algo.kl.coef": [0.5, 1.0]})
    assert main(["sweep", str(f), "--dry-run"]) == 0
    assert "goodhart: note: expanding 2 points, each validated" in capsys.readouterr().err
    csv = tmp_path / "s.csv"
    csv.write_text("point,prompt,proxy,kl\nbase,p,1,0\na,p,2,0.1\n")
    main(["analyze", str(csv), "--out", str(tmp_path / "a")])
    assert capsys.readouterr().err.startswith(f"goodhart: analyzing {csv} (0 MiB): a large file, this takes a while")
