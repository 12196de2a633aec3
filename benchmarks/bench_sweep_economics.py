"""Sweep economics: a 6-beta tilt sweep against 6 PPO runs aiming at the same KLs, in wall
time and in samples drawn from a model.

    tilt  one base pool (P held-out prompts x N samples, sampled and scored once, from an empty
          cache) and six tilt points on it, each a fresh PointContext as in a sweep. The tilt at
          beta is the exact optimum of E[proxy] - beta KL, so its KL is what PPO at the same
          beta is trying to reach.
    ppo   our PPO at each beta, its adaptive controller aimed at the tilt's KL at that beta
          (algo.kl.target), then the same held-out evaluation. Samples = steps x batch + eval.

--quick runs one PPO run (the middle beta) and multiplies its cost by 6 (labelled
`extrapolated`): PPO runs at different betas cost the same per step. Goal: tilt >= 20x cheaper.
Whether PPO reached the target KL within its steps is reported beside the ratio: if it did not,
the ratio understates PPO's cost.

    python benchmarks/bench_sweep_economics.py [--quick|--smoke] [--device cuda]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

NAME = "sweep_economics"


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    from goodhart.eval import metrics as M
    from goodhart.pipeline import optimizers
    from goodhart.pipeline.base.context import PointContext

    model_dir = B.bench_model_dir(opts)
    P, N = opts.pick((2, 16), (16, 128), (32, 256))
    betas = opts.pick([1.0, 0.25], [2.0, 1.0, 0.5, 0.25, 0.1, 0.05], [2.0, 1.0, 0.5, 0.25, 0.1, 0.05])
    ppo_steps = opts.pick(2, 25, 100)
    ppo_betas = opts.pick([betas[-1]], [betas[len(betas) // 2]], betas)
    common = [f"prompts.n_eval={P}", "reward=gaussian"]

    # ---- tilt: one pool from an empty cache, six points on it
    old_cache = os.environ.get("GOODHART_CACHE")
    tilt_rows = []
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as root, B.quiet():
        os.environ["GOODHART_CACHE"] = cache
        try:
            t0 = time.perf_counter()
            for i, beta in enumerate(betas):
                cfg = B.run_config(
                    model_dir, opts.device, common + ["algo=tilt", f"algo.kl.coef={beta}", f"sampling.n={N}"]
                )
                out = optimizers.get("tilt")(PointContext(cfg, Path(root) / str(i), progress=False))
                tilt_rows.append({"beta": beta, "kl": out.row[M.KL], "gain_proxy": out.row[M.GAIN_PROXY]})
            tilt_s = time.perf_counter() - t0
        finally:
            if old_cache is None:
                os.environ.pop("GOODHART_CACHE", None)
            else:
                os.environ["GOODHART_CACHE"] = old_cache
    tilt_samples = P * N
    load_after_tilt = B.load_avg()

    # ---- PPO at the same betas, aimed at the tilt's KL
    ppo_rows = []
    for beta in ppo_betas:
        target = max(next(r["kl"] for r in tilt_rows if r["beta"] == beta), 0.05)
        cfg = B.run_config(
            model_dir,
            opts.device,
            common
            + [
                "algo=ppo",
                f"algo.steps={ppo_steps}",
                f"algo.kl.coef={beta}",
                f"algo.kl.target={target}",
                "algo.kl.horizon=256",
                "algo.checkpoint_every=0",
            ],
        )
        kls: list[float] = []

        def log(metrics: dict[str, float], step: int, kls=kls) -> None:
            if M.KL in metrics:
                kls.append(metrics[M.KL])

        with tempfile.TemporaryDirectory() as d, B.quiet():
            t0 = time.perf_counter()
            out = optimizers.get("ppo")(PointContext(cfg, Path(d), progress=False, log_metrics=log))
            secs = time.perf_counter() - t0
        a = cfg.algo
        reached = next((i + 1 for i, k in enumerate(kls) if k >= 0.9 * target), None)
        ppo_rows.append(
            {
                "beta": beta,
                "target_kl": target,
                "steps": ppo_steps,
                "reached_at_step": reached,
                "train_kl_last": kls[-1] if kls else float("nan"),
                "heldout_kl": out.row[M.KL],
                "seconds": secs,
                "samples": ppo_steps * a.batch_prompts * a.samples_per_prompt + P * a.eval_samples,
            }
        )
    scale = len(betas) / len(ppo_rows)
    ppo_s = sum(r["seconds"] for r in ppo_rows) * scale
    ppo_samples = sum(r["samples"] for r in ppo_rows) * scale
    figures = {
        "prompts": P,
        "pool_n": N,
        "betas": betas,
        "tilt": {"seconds": tilt_s, "samples": tilt_samples, "points": tilt_rows},
        "ppo": {
            "seconds_all": ppo_s,
            "samples_all": ppo_samples,
            "runs_measured": len(ppo_rows),
            "extrapolated": len(ppo_rows) < len(betas),
            "runs": ppo_rows,
        },
        "wall_ratio": ppo_s / tilt_s,
        # PPO stopped short of the tilt's KL: more steps would cost more, so the ratio understates it
        "ratio_is_lower_bound": any(r["reached_at_step"] is None for r in ppo_rows),
        "samples_ratio": ppo_samples / tilt_samples,
        "goal": "wall_ratio >= 20",
        "load_during": [load_after_tilt, B.load_avg()],
    }
    B.say(
        f"\n== sweep economics: {len(betas)} betas, pool {P} prompts x {N}, PPO {ppo_steps} steps per run, device {opts.device}"
    )
    B.say(B.table(tilt_rows, ["beta", "kl", "gain_proxy"]))
    B.say(
        B.table(
            ppo_rows,
            ["beta", "target_kl", "steps", "reached_at_step", "train_kl_last", "heldout_kl", "seconds", "samples"],
        )
    )
    ext = f" (extrapolated from {len(ppo_rows)} run(s))" if figures["ppo"]["extrapolated"] else ""
    B.say(
        f"tilt sweep {tilt_s:.1f}s, {tilt_samples} samples; {len(betas)} PPO runs {ppo_s:.1f}s{ext}, {ppo_samples:.0f} samples; "
        f"tilt cheaper by {figures['wall_ratio']:.1f}x in wall time, {figures['samples_ratio']:.1f}x in samples"
    )
    if figures["ratio_is_lower_bound"]:
        B.say(f"PPO had not reached the tilt's KL after {ppo_steps} steps: the ratios are lower bounds")
    B.say(f"load averages: {figures['load_during']}")
    return B.write_json(opts.out, NAME, opts, figures, started)


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
