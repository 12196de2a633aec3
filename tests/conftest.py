"""Session-wide test setup: offline, pinned threads, a private cache, one small model built once."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import pytest

# Small enough to build in seconds, big enough to produce sentence-like samples.
SMALL_RECIPE = dict(hidden=64, layers=2, heads=2, n_sentences=3000, steps=120, batch=32, vocab_size=320)


# Seconds each long test file took in the fast suite (`pytest --durations=0`, summed per file; quiet
# 2-core machine, 2026-12-08). `make test` runs files on two workers, each taking the next file
# when it is free (`--dist loadfile --no-loadscope-reorder`): the longest first, so that no long
# file starts last while the other worker idles (xdist's own order, most tests first, put the
# slurm and interrupt files, few tests but ~80 s and ~60 s, at the end). Unlisted files count 0.
FILE_SECONDS = {
    "test_slurm.py": 79, "test_interrupts.py": 58, "test_benchmarks.py": 54, "test_reliability.py": 49,
    "test_verdicts.py": 48, "test_integrations_trl.py": 48, "test_analyze.py": 47, "test_tracking_concurrency.py": 32,
    "test_holdout.py": 27, "test_fuzz_inputs.py": 26, "test_launch_configs.py": 25, "test_harden.py": 23,
    "test_cli_startup.py": 22, "test_trl_trainers.py": 22, "test_alarm_bench.py": 21, "test_reward_model.py": 21,
    "test_alarm_eval.py": 20, "test_alarm.py": 20, "test_tails.py": 18, "test_ppo.py": 17, "test_examples.py": 16,
    "test_readme_commands.py": 16, "test_resume.py": 16, "test_smollm2.py": 16, "test_tilt_pool.py": 15,
    "test_tiny_model.py": 14, "test_report_html.py": 13, "test_reproducible.py": 13, "test_mlflow_readable.py": 10,
    "test_report_unfinished.py": 10, "test_coverage.py": 10, "test_arena_theory.py": 10,
}  # fmt: skip


def pytest_collection_modifyitems(session, config, items) -> None:
    """Longest files first (FILE_SECONDS), each file's tests in their own order; KNOWN_MERGE_GAPS xfail."""
    items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 0))  # (a stable sort)
    _mark_known_gaps(items)


@pytest.fixture(scope="session", autouse=True)
def _session_env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("goodhart-cache")
    old = os.environ.get("GOODHART_CACHE")
    os.environ["GOODHART_CACHE"] = str(cache)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    yield
    if old is None:
        os.environ.pop("GOODHART_CACHE", None)
    else:
        os.environ["GOODHART_CACHE"] = old


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory) -> Path:
    """A real Hugging Face directory of a small built-in model (same code path as `model: tiny`)."""
    from goodhart.pipeline.base.tiny_model import TinyRecipe, ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.mktemp("small-model"), TinyRecipe(**SMALL_RECIPE), progress=False)


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in a fresh working directory (the default MLflow store is ./mlflow.db)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


class Killed(Exception):
    """Raised inside a point by `run_point_killed_at`: a kill between two training steps."""


@pytest.fixture()
def run_point_killed_at(monkeypatch):
    """run(cfg, point_dir, kill_at=None) -> (row, steps logged): `run_point` with the point's
    per-step logger recording steps, and raising Killed when step `kill_at` is logged (then the
    row is None). A kill mid-run, for the resume tests of every trained optimizer."""
    import goodhart.pipeline.sweeps.point as point
    from goodhart.pipeline.base.context import PointContext

    kill: list[int] = []
    logged: list[int] = []

    def recorder(metrics, step):
        if step in kill:
            raise Killed(f"killed at step {step}")
        logged.append(step)

    monkeypatch.setattr(point, "PointContext", lambda cfg, d, progress, log: PointContext(cfg, d, False, recorder))

    def run(cfg, point_dir: Path, kill_at: int | None = None):
        kill[:] = [] if kill_at is None else [kill_at]
        logged.clear()
        if kill_at is None:
            return point.run_point(cfg, point_dir, progress=False), list(logged)
        with pytest.raises(Killed):
            point.run_point(cfg, point_dir, progress=False)
        return None, list(logged)

    return run


# Known gaps left by merging the round's branches (the calibrated alarm, the verdict rule v3 and
# the stores/stages changes landed together; each test below encodes a figure or a level measured
# before the others' change). Each is xfail, not skipped, so it reports XPASS once mended; the
# issue note lists them with what remains. Remove an entry when its test is updated.
KNOWN_MERGE_GAPS = {}


def _mark_known_gaps(items) -> None:
    for item in items:
        key = item.nodeid.split("tests/", 1)[-1]
        if key in KNOWN_MERGE_GAPS:
            item.add_marker(pytest.mark.xfail(reason=KNOWN_MERGE_GAPS[key], strict=False))
