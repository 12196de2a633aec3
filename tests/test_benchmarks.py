"""The benchmark scripts cannot rot: `benchmarks/run_all.py --smoke` (the smallest case of every
benchmark) runs in a subprocess and writes well-formed JSON. Timings are never asserted: they
depend on the machine and its load; only that every figure exists and is a sane number."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHES = ["rl_step", "sampling", "generation", "sweep_economics", "scaling", "end_to_end"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, small_model_dir) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "GOODHART_BENCH_MODEL": str(small_model_dir), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--smoke", "--out", str(out)],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return r, out


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_run_all_smoke_writes_every_benchmark(smoke):
    r, out = smoke
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "smoke" and summary["failed"] == {}
    assert sorted(summary["headline"]) == sorted(BENCHES)
    m = summary["machine"]
    assert m["cores"] >= 1 and m["cpu_model"] and m["torch"] and len(m["load_avg"]) == 3
    for name in BENCHES:
        doc = json.loads((out / f"{name}.json").read_text())
        assert doc["benchmark"] == name and doc["mode"] == "smoke" and doc["machine"]["device"] == "cpu"
    assert "== summary" in r.stdout  # the figures are printed, not only written


def test_smoke_figures_are_sane(smoke):
    _, out = smoke
    h = json.loads((out / "summary.json").read_text())["headline"]
    for algo in ("rloo", "grpo"):
        assert _positive(h["rl_step"][f"{algo}_pipeline_over_plain"])
    assert _positive(h["rl_step"]["ppo_over_plain_rloo"])
    for reward in ("gold", "hf"):
        assert _positive(h["sampling"][f"{reward}_throughput_ratio"])
    assert h["sampling"]["batch_size_sampling"] >= 1 and h["sampling"]["batch_size_hf_reward"] >= 1
    gen = h["generation"]
    assert _positive(gen["pipeline_over_plain"]) and _positive(gen["pipeline_tokens_per_s"])
    assert gen["same_samples"] is True  # the shared prefill samples what plain generate samples
    econ = json.loads((out / "sweep_economics.json").read_text())
    assert econ["tilt"]["samples"] == econ["prompts"] * econ["pool_n"]  # one pool serves every beta
    assert econ["ppo"]["extrapolated"] and _positive(econ["wall_ratio"])
    assert [p["beta"] for p in econ["tilt"]["points"]] == econ["betas"]
    sc = json.loads((out / "scaling.json").read_text())
    for k in ("pool_distributional", "pool_model", "bon_n", "points"):
        assert len(sc[k]["rows"]) >= 2 and math.isfinite(sc[k]["time_exponent"])
        assert all(_positive(row["seconds"]) and row["peak_rss_mib"] > 0 for row in sc[k]["rows"])
    assert sc["model_size"]["rows"][0]["params"] > 0
    e2e = json.loads((out / "end_to_end.json").read_text())
    assert e2e["points"] == 4 and _positive(e2e["wall_seconds_sweep"]) and e2e["peak_rss_mib"] > 50


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is here: --device cuda measures")
def test_device_cuda_without_a_gpu_says_so_and_measures_nothing(tmp_path):
    """`run_all.py --device cuda` on a machine without a GPU: one line, exit 2, no JSON (a CPU
    figure filed as a GPU one would be worse than none)."""
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "run_all.py"),
            "--smoke",
            "--device",
            "cuda",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("benchmarks:")]
    assert len(lines) == 1 and "--device cuda" in lines[0] and "nothing measured" in lines[0], r.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda_runs_the_gpu_path(tmp_path, small_model_dir):
    """On a GPU node: the generation benchmark measures on the GPU and records which one."""
    env = {**os.environ, "GOODHART_BENCH_MODEL": str(small_model_dir)}
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--smoke", "--device", "cuda", "--only", "generation"]
        + ["--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    doc = json.loads((tmp_path / "generation.json").read_text())
    assert doc["machine"]["device"] == "cuda" and doc["machine"]["gpu"]


def test_bench_demo_reads_the_demos_verdicts():
    """benchmarks/bench_demo.py (the `make demo` figure): its reading of the sweep's output."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_demo

    log = (
        "\nutility sentiment | proxy sentiment + pareto(alpha=1.5) x0.3   (base utility 0.045)\n"
        "algo  knob  KL\n----\n bon  n=1  0.000\n\n"
        "utility sentiment | proxy sentiment + pareto(alpha=1.5) x0.3 [feature:then]   (base utility 0.047)\n"
        "algo  knob  KL\n----\n ppo  kl.coef=3  0.134\n\n"
        "utility sentiment | proxy sentiment + pareto(alpha=1.5) x0.3   (base utility 0.046)\n"
        "algo  knob  KL\n----\n bon  n=2  0.190\n\n"
        "verdicts (rule 2; every point's label and why: `goodhart report runs/demo`):\n"
        "  c1 utility sentiment | proxy sentiment + gaussian x0.5: no-catastrophe\n"
        "  c9 utility gaussian x1 | proxy gaussian x1 + pareto(alpha=1) x1: catastrophic\n"
        "  3 of 68 points unresolved; sweep verdict: catastrophic\n\n68 point(s): 68 run\n"
    )
    lines = bench_demo.verdict_lines(log)
    assert lines[-1].endswith("sweep verdict: catastrophic") and len(lines) == 3
    assert lines[1].endswith("pareto(alpha=1) x1: catastrophic")
