"""Sampling and scoring for best-of-n / tilt: the pipeline's sampler + Scorer against plain
`model.generate` + the reward computed directly, same model, prompts, batch size, settings.

Two rewards:
  gold  the demo's proxy: VADER sentiment + a synthetic gaussian error (pipeline Scorer) vs
        plain VADER alone (the plain side has no synthetic error: the ratio includes its cost);
  hf    a sequence-classification reward model (the base model's weights with a fresh score
        head, which is enough for timing) through the pipeline's `hf` reward vs a plain
        AutoModelForSequenceClassification forward at the same batch size.
Goal: pipeline throughput >= 0.9x plain. Also reports the batch sizes the pipeline picks and
the sampler's throughput at other batch sizes.

    python benchmarks/bench_sampling.py [--quick|--smoke] [--device cuda]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as B

NAME = "sampling"


def run(opts: B.Opts) -> dict:
    started = time.perf_counter()
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.base.prompts import load_prompts
    from goodhart.pipeline.base.sampling import sample_completions
    from goodhart.pipeline.base.scoring import Scorer

    model_dir = B.bench_model_dir(opts)
    P = opts.pick(2, 8, 32)
    n = opts.pick(8, 64, 256)
    reps = opts.pick(1, 3, 5)
    dev = opts.device
    cfg = B.run_config(model_dir, dev, [f"prompts.n_eval={P}", f"sampling.n={n}", "reward=gaussian"])
    hf_cfg = B.run_config(
        model_dir,
        dev,
        [f"prompts.n_eval={P}", f"reward={{type: hf, path: {model_dir}, device: {dev}}}", "utility=same"],
    )
    bs = cfg.sampling.batch_size
    hf_bs = hf_cfg.reward.batch_size
    s = cfg.sampling

    with B.quiet():
        _, prompts = load_prompts(cfg.prompts)
        model, tok = load_causal_lm(cfg.model, progress=False)
        gold = Scorer(cfg)
        hf = Scorer(hf_cfg)
        # The plain side: its own tokenizer and classifier, loaded the plain way.
        ptok = AutoTokenizer.from_pretrained(model_dir)
        ptok.padding_side = "left"
        rm_tok = AutoTokenizer.from_pretrained(model_dir)
        rm = AutoModelForSequenceClassification.from_pretrained(model_dir).to(dev).eval()
        rm.config.pad_token_id = rm_tok.pad_token_id
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        vader = SentimentIntensityAnalyzer()

    flat = [p for p in prompts for _ in range(n)]
    out: dict = {}

    def pipe_sample(batch_size: int = bs):
        c = s.model_copy(update={"batch_size": batch_size})
        comps = sample_completions(model, tok, prompts, n, c, seed=0, progress=False)
        out["pipe"] = [x for row in comps for x in row]

    def plain_sample():
        torch.manual_seed(0)
        res = []
        with torch.inference_mode():
            for i in range(0, len(flat), bs):
                enc = ptok(flat[i : i + bs], return_tensors="pt", padding=True).to(dev)
                gen = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=s.temperature,
                    top_p=s.top_p,
                    top_k=0,
                    max_new_tokens=s.max_new_tokens,
                    pad_token_id=ptok.pad_token_id,
                    eos_token_id=ptok.eos_token_id,
                )
                res.extend(ptok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
        out["plain"] = res

    def plain_hf(completions):
        texts = [p + c for p, c in zip(flat, completions)]
        vals = []
        with torch.inference_mode():
            for i in range(0, len(texts), hf_bs):
                enc = rm_tok(texts[i : i + hf_bs], return_tensors="pt", padding=True, truncation=True, max_length=256)
                vals.append(rm(**enc.to(dev)).logits[:, 0].float().cpu().numpy())
        return vals

    with B.quiet():
        pipe_sample()  # warm-up, and the completions both scorers see
        comps = out["pipe"]
        cases = {
            "pipeline_sample": pipe_sample,
            "plain_sample": plain_sample,
            "pipeline_score_gold": lambda: gold.components(flat, comps),
            "plain_score_gold": lambda: [vader.polarity_scores(c)["compound"] for c in comps],
            "pipeline_score_hf": lambda: hf.components(flat, comps),
            "plain_score_hf": lambda: plain_hf(comps),
        }
        t = B.interleaved(cases, reps, warmup=1, device=dev)
    sec = t["seconds"]
    med = {k: B.median(v) for k, v in sec.items()}
    N = len(flat)
    rows = []
    for reward in ("gold", "hf"):
        pipe = [a + b for a, b in zip(sec["pipeline_sample"], sec[f"pipeline_score_{reward}"])]
        plain = [a + b for a, b in zip(sec["plain_sample"], sec[f"plain_score_{reward}"])]
        rows.append(
            {
                "reward": reward,
                "samples": N,
                "pipeline_per_s": N / B.median(pipe),
                "plain_per_s": N / B.median(plain),
                "throughput_ratio": B.paired_ratio(plain, pipe),  # pipeline / plain throughput
                "sample_ratio": B.paired_ratio(sec["plain_sample"], sec["pipeline_sample"]),
                "score_ratio": B.paired_ratio(sec[f"plain_score_{reward}"], sec[f"pipeline_score_{reward}"]),
                "score_share": B.median(sec[f"pipeline_score_{reward}"]) / B.median(pipe),
            }
        )

    # The sampler's own throughput at other batch sizes: is the one it picks a good one?
    sizes = sorted({x for x in opts.pick([8, 16], [64, 256, bs], [64, 128, 256, bs, 1024]) if x <= max(N, 8)} | {bs})
    sweep = {}
    with B.quiet():
        bt = B.interleaved(
            {str(b): (lambda b=b: pipe_sample(b)) for b in sizes}, max(1, reps - 1), warmup=0, device=dev
        )
    for b in sizes:
        sweep[b] = N / B.median(bt["seconds"][str(b)])

    small = small_batch_scoring(cfg, flat, comps, reps=opts.pick(3, 20, 50))

    B.say(f"\n== sampling + scoring: {P} prompts x {n} samples, {s.max_new_tokens} new tokens, device {dev}")
    B.say(f"batch sizes the pipeline picks: sampling.batch_size={bs}, hf reward batch_size={hf_bs}")
    B.say(
        B.table(
            rows,
            [
                "reward",
                "samples",
                "pipeline_per_s",
                "plain_per_s",
                "throughput_ratio",
                "sample_ratio",
                "score_ratio",
                "score_share",
            ],
        )
    )
    B.say("sampler throughput (samples/s) by batch size: " + ", ".join(f"{b}: {v:.0f}" for b, v in sweep.items()))
    B.say(
        f"an RL-sized batch (16 samples), gold reward: pipeline Scorer {small['pipeline_ms']:.2f} ms vs plain VADER "
        f"{small['plain_ms']:.2f} ms; building a Scorer {small['scorer_init_ms']:.1f} ms"
    )
    B.say(f"load averages during the runs: {t['load']}")
    figures = {
        "prompts": P,
        "samples_per_prompt": n,
        "max_new_tokens": s.max_new_tokens,
        "batch_size_sampling": bs,
        "batch_size_hf_reward": hf_bs,
        "reps": reps,
        "median_seconds": med,
        "seconds": sec,
        "rows": rows,
        "throughput_by_batch_size": sweep,
        "small_batch_scoring": small,
        "goal": "throughput_ratio >= 0.9",
        "load_during": t["load"] + bt["load"],
    }
    return B.write_json(opts.out, NAME, opts, figures, started)


def small_batch_scoring(cfg, flat: list[str], comps: list[str], reps: int) -> dict:
    """Fixed costs that a big pool hides and a trained run pays every step or every point: the
    Scorer (gold proxy) on 16 samples vs plain VADER on them, and building a Scorer (once per
    sweep point). Median over `reps` interleaved rounds, in milliseconds."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from goodhart.pipeline.base.scoring import Scorer

    p16, c16 = flat[:16], comps[:16]
    scorer, vader = Scorer(cfg), SentimentIntensityAnalyzer()
    t = B.interleaved(
        {
            "pipeline": lambda: scorer.components(p16, c16),
            "plain": lambda: [vader.polarity_scores(c)["compound"] for c in c16],
            "scorer_init": lambda: Scorer(cfg),
        },
        reps,
    )
    ms = {k: 1000 * B.median(v) for k, v in t["seconds"].items()}
    return {
        "samples": 16,
        "pipeline_ms": ms["pipeline"],
        "plain_ms": ms["plain"],
        "scorer_init_ms": ms["scorer_init"],
        "load": t["load"][-1],
    }


if __name__ == "__main__":
    run(B.parse_opts(sys.argv[1:], NAME, __doc__))
