"""Shared harness of the benchmarks: sizes per mode, interleaved timing, peak memory, the
machine, growth-exponent fits, tables and JSON.

Every benchmark compares the pipeline with the plain library doing the same work in the same
process, interleaved (A B A B ..., the order rotated each round) so that a neighbour's load
hits both sides alike, and reports medians and ratios. Nothing here asserts a timing: the
figures are printed and written to JSON, with the machine's load average beside each one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASE_YAML = REPO / "configs" / "base.yaml"
RESULTS = REPO / "benchmarks" / "results"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

SMALL_RECIPE = dict(hidden=64, layers=2, heads=2, n_sentences=3000, steps=120, batch=32, vocab_size=320)
"""--smoke builds this small model (seconds) instead of the built-in one: the CI case checks
that the scripts run, not what they measure."""


# ============================================================================================
# Command line shared by every script
# ============================================================================================
@dataclass
class Opts:
    mode: str  # smoke | quick | full
    device: str  # cpu | cuda | cuda:N
    out: Path  # JSON file (one script) or folder (run_all)

    def pick(self, smoke: Any, quick: Any, full: Any) -> Any:
        """The size of something for this mode."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.mode]


def parse_opts(argv: list[str] | None, name: str, doc: str | None = None) -> Opts:
    ap = argparse.ArgumentParser(description=doc)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small sizes: every figure in minutes")
    g.add_argument("--smoke", action="store_true", help="the smallest case of each figure (CI: seconds)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N (GPU nodes)")
    ap.add_argument("--out", type=Path, default=None, help=f"JSON path (default benchmarks/results/{name}.json)")
    a = ap.parse_args(argv)
    mode = "smoke" if a.smoke else "quick" if a.quick else "full"
    if check_device(a.device) is None:
        raise SystemExit(2)
    return Opts(mode, a.device, a.out or RESULTS / f"{name}.json")


def check_device(device: str) -> str | None:
    """What the figures will be measured on ('cpu', or the GPU's name); None, after one line
    saying why, when --device names a GPU this machine does not have (nothing is measured then:
    a CPU figure recorded as a GPU one would be worse than none)."""
    if not device.startswith("cuda"):
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        why = "torch is a CPU build" if torch.version.cuda is None else "no CUDA device is visible"
        print(
            f"benchmarks: --device {device}: {why} (torch {torch.__version__}); nothing measured. On a GPU node: "
            'make setup TORCH_SPEC="torch==2.13.0" (a CUDA build), then run this again',
            file=sys.stderr,
        )
        return None
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        print(f"benchmarks: --device {device}: only {torch.cuda.device_count()} CUDA device(s) here", file=sys.stderr)
        return None
    return torch.cuda.get_device_name(index)


# ============================================================================================
# Timing
# ============================================================================================
def load_avg() -> list[float]:
    """`uptime`'s 1/5/15-minute load averages: how busy the machine was around a figure."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def interleaved(cases: dict[str, Callable[[], Any]], reps: int, warmup: int = 1, device: str = "cpu") -> dict:
    """Run every case `warmup` times untimed, then `reps` rounds, each case once per round, the
    order rotated each round. Returns {name: [seconds per round]} plus the load averages seen."""
    names = list(cases)
    for _ in range(warmup):
        for n in names:
            cases[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    loads = [load_avg()]
    for r in range(reps):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            sync(device)
            t0 = time.perf_counter()
            cases[n]()
            sync(device)
            times[n].append(time.perf_counter() - t0)
        loads.append(load_avg())
    return {"seconds": times, "load": loads}


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def summary(xs: list[float]) -> dict[str, float]:
    """Median, min, max and count of a list of seconds (the median is the figure)."""
    if not xs:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": median(xs), "min": float(min(xs)), "max": float(max(xs)), "n": len(xs)}


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a_i / b_i (rounds are adjacent in time, so load drift cancels)."""
    return median([x / y for x, y in zip(a, b) if y > 0])


# ============================================================================================
# Peak memory
# ============================================================================================
def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class PeakRSS:
    """Samples this process's RSS every `interval` seconds on a thread; `.peak_mib` is the
    largest rise above the RSS at entry (what the measured work added), `.peak_total_mib` the
    largest RSS seen. On CUDA, also the peak of allocated device memory."""

    def __init__(self, device: str = "cpu", interval: float = 0.002):
        self.device, self.interval = device, interval
        self.base = self.peak = 0
        self._stop = threading.Event()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        import gc

        gc.collect()
        self.base = self.peak = rss_bytes()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_bytes())
        self.cuda_peak = 0
        if self.device.startswith("cuda"):
            import torch

            self.cuda_peak = torch.cuda.max_memory_allocated()

    @property
    def peak_mib(self) -> float:
        return (self.peak - self.base) / 2**20

    @property
    def peak_total_mib(self) -> float:
        return self.peak / 2**20


# ============================================================================================
# Growth exponents
# ============================================================================================
def growth_exponent(sizes: list[float], values: list[float]) -> float:
    """b in value ~ a * size^b, least squares in log-log over the upper half of the sizes (at
    least 3 points): small sizes are dominated by fixed overheads, not by how the work grows."""
    pts = [(s, v) for s, v in zip(sizes, values) if s > 0 and v > 0]
    if len(pts) < 2:
        return float("nan")
    pts.sort()
    pts = pts[max(0, min(len(pts) // 2, len(pts) - 3)) :]
    xs = [math.log(s) for s, _ in pts]
    ys = [math.log(v) for _, v in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return float(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx) if sxx > 0 else float("nan")


# ============================================================================================
# The machine
# ============================================================================================
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(device: str = "cpu") -> dict[str, Any]:
    """Where the figures came from."""
    import torch

    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "load_avg": load_avg(),
    }
    for pkg in ("transformers", "trl", "accelerate"):
        try:
            info[pkg] = __import__(pkg).__version__
        except ImportError:
            info[pkg] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ============================================================================================
# Models and configs
# ============================================================================================
def bench_model_dir(opts: Opts) -> Path:
    """The base model the benchmarks run on: the built-in tiny model (built once into the
    user's cache, ~80 s), or in --smoke a smaller recipe (seconds). $GOODHART_BENCH_MODEL, if
    set, names a model directory to use instead (the CI test passes the one it built)."""
    from goodhart.pipeline.base.tiny_model import TinyRecipe, ensure_tiny_model

    if os.environ.get("GOODHART_BENCH_MODEL"):
        return Path(os.environ["GOODHART_BENCH_MODEL"])
    if opts.mode == "smoke":
        from goodhart.pipeline.io import cache_dir

        return ensure_tiny_model(cache_dir() / "bench-small", TinyRecipe(**SMALL_RECIPE), progress=False)
    return ensure_tiny_model(progress=False)


def run_config(model_dir: Path, device: str, overrides: list[str]):
    """configs/base.yaml with the benchmark's model, device and no MLflow, plus `overrides`."""
    from goodhart.pipeline.config.load import load_config

    base = [f"model.path={model_dir}", f"model.device={device}", "tracking.enabled=false"]
    return load_config(BASE_YAML, base + overrides)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence progress bars and library chatter during timed work."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ============================================================================================
# Output
# ============================================================================================
def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    """A plain fixed-width table of `cols` (numbers to 4 significant digits)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    w = [max(len(c), *(len(x[i]) for x in cells)) if cells else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w[i]) for i, c in enumerate(cols)), "  ".join("-" * x for x in w)]
    lines += ["  ".join(x[i].rjust(w[i]) for i in range(len(cols))) for x in cells]
    return "\n".join(lines)


def write_json(path: Path, name: str, opts: Opts, figures: dict[str, Any], started: float) -> dict[str, Any]:
    """One benchmark's record: its figures, the mode, the machine and the load around it."""
    doc = {
        "benchmark": name,
        "mode": opts.mode,
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "machine": machine(opts.device),
        **figures,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    return doc


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def say(*a: Any) -> None:
    print(*a, flush=True)
    sys.stdout.flush()
