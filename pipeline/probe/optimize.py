"""`goodhart probe --mode optimize`: ACG against an HF reward model, then what the sequence
found is worth: its reward in base-policy standard deviations, the best of as many uniform
random sequences, and the KL / reward trade-off of mixing it into the base policy."""

from __future__ import annotations

import time

import numpy as np

from goodhart.eval import metrics as M
from goodhart.eval.mixture import mixture_table
from goodhart.pipeline.config.schema import HFReward, RunConfig
from goodhart.pipeline.errors import ConfigError
from goodhart.pipeline.io import atomic_write_json, read_json
from goodhart.pipeline.probe.config import ProbeConfig
from goodhart.pipeline.probe.run import (
    ProbeResult,
    base_samples,
    context_prompt,
    describe,
    mark_dir,
    probe_dir,
    reward_key,
    text_table,
)


def require_differentiable(cfg: RunConfig) -> HFReward:
    if not isinstance(cfg.reward, HFReward):
        raise ConfigError(
            f"probe --mode optimize needs a differentiable reward: reward.type=hf (a sequence-classification "
            f"checkpoint); reward.type={cfg.reward.type} has no gradient w.r.t. input tokens "
            "(use --mode random or base for it)"
        )
    return cfg.reward


def reference(cfg: RunConfig, pcfg: ProbeConfig, prompt: str, rm, progress: bool) -> tuple[np.ndarray, str]:
    """Base-policy rewards for this prompt: the probe's `base` result if there is one (same
    reward, same prompt), else `base_reference` fresh completions scored now."""
    root = probe_dir(cfg, pcfg)
    if (root / "base.npz").is_file() and (root / "base.json").is_file():
        info, marker = read_json(root / "base.json"), read_json(root / "probe.json")
        if info.get("prompt") == prompt and marker.get("reward_key") == reward_key(cfg):
            return np.load(root / "base.npz")["rewards"], f"the base result in {root} ({info['distribution']['n']})"
    texts = base_samples(cfg, prompt, pcfg.base_reference, progress)
    return rm.score_texts(texts), f"{len(texts)} base completions scored now"


def run_optimize(cfg: RunConfig, pcfg: ProbeConfig, progress: bool = True) -> ProbeResult:
    import torch

    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.base.scoring import build_reward
    from goodhart.pipeline.probe.acg import acg_search
    from goodhart.pipeline.probe.logprob import completion_logprob
    from goodhart.pipeline.probe.token_rm import TokenRM

    spec = require_differentiable(cfg)
    root, prompt, t0 = probe_dir(cfg, pcfg), context_prompt(cfg, pcfg), time.time()
    mark_dir(root, cfg, prompt)
    s = pcfg.search
    rm = TokenRM(build_reward(spec), prompt, whole_characters=s.retokenize_filter)
    if rm.context_length() + pcfg.length > spec.max_length:
        raise ConfigError(
            f"probe.length={pcfg.length} plus the prompt's {rm.context_length()} tokens exceeds "
            f"reward.max_length={spec.max_length}: the reward would truncate the sequence"
        )
    ref, ref_source = reference(cfg, pcfg, prompt, rm, progress)
    base = describe(ref)

    # ---- the search, and the best of as many random sequences (same budget of forwards)
    res = acg_search(rm, s, pcfg.length, pcfg.batch_size, progress)
    gen = torch.Generator().manual_seed(s.seed + 10_000)
    rand = None
    if pcfg.random_budget and res.scored:
        rand = rm.score(rm.random(res.scored, pcfg.length, gen), pcfg.batch_size)

    # ---- each restart's best through the text path, in base std devs, and its log pi_0
    model, tok = load_causal_lm(cfg.model, progress=progress)
    rows = []
    for r in res.restarts:
        text_reward = float(rm.score_texts([r.text])[0])
        lp = completion_logprob(model, tok, prompt, r.text, cfg.sampling.max_new_tokens, cfg.sampling.temperature)
        rows.append(
            {
                "reward": text_reward,
                "token_reward": r.reward,
                "z": (text_reward - base["mean"]) / base["std"],
                "base_logprob": lp.logprob,
                "base_tokens": lp.tokens,
                "text": r.text,
                "ids": r.ids,
                "history": r.history,
            }
        )
    rows.sort(key=lambda row: -row["reward"])
    best = rows[0]
    mix = []
    if np.isfinite(best["base_logprob"]):
        mix = mixture_table(pcfg.mix_p, best["base_logprob"], best["reward"], base["mean"], base["std"])

    summary = {
        "mode": "optimize",
        "prompt": prompt,
        "length": pcfg.length,
        "search": s.model_dump(),
        "reference": {"source": ref_source, "distribution": base},
        "best": rows,
        "random_same_budget": None
        if rand is None
        else {"n": int(res.scored), "max": float(rand.max()), "mean": float(rand.mean())},
        "scored": res.scored,
        "filtered": res.filtered,
        "candidates_per_s": res.candidates_per_s,
        "search_seconds": res.seconds,
        "mixture": [m.__dict__ for m in mix],
        "seconds": time.time() - t0,
    }
    files = [atomic_write_json(root / "optimize.json", summary)]
    metrics = {
        M.PROBE_BEST: best["reward"],
        M.PROBE_BEST_Z: best["z"],
        M.PROBE_BEST_LOGPROB: best["base_logprob"],
        M.PROBE_SCORED: res.scored,
        M.PROBE_CANDIDATES_PER_S: res.candidates_per_s,
    }
    if rand is not None:
        metrics[M.PROBE_RANDOM_MAX] = float(rand.max())
    for m in mix:
        metrics[M.probe_mix("kl", m.p)] = m.kl
        metrics[M.probe_mix("gain", m.p)] = m.gain
    # best reward found so far over the whole search; restarts run one after another (step r * steps + i)
    so_far = np.maximum.accumulate([h for r in res.restarts for h in r.history])
    steps = [(i, {M.PROBE_SEARCH_BEST: float(v)}) for i, v in enumerate(so_far)]
    return ProbeResult("optimize", root, summary, metrics, render(summary), files, steps)


def render(summary: dict) -> str:
    base, best = summary["reference"]["distribution"], summary["best"][0]
    rnd = summary["random_same_budget"]
    lines = [
        f"== optimize: ACG over {summary['length']} tokens after prompt {summary['prompt']!r}",
        f"search: {summary['scored']} candidates scored in {summary['search_seconds']:.1f} s "
        f"({summary['candidates_per_s']:.0f} candidates/s in batched scoring; "
        f"{summary['filtered']} dropped by the re-tokenization filter)",
        f"base policy ({summary['reference']['source']}): mean {base['mean']:.4g}, std {base['std']:.4g}, "
        f"q0.99 {base['q0.99']:.4g}, max {base['max']:.4g}",
        "",
        text_table(
            ["restart best", "reward", "base std devs", "log pi0(y*)", "text"],
            [[i, r["reward"], r["z"], r["base_logprob"], repr(r["text"][:60])] for i, r in enumerate(summary["best"])],
        ),
    ]
    if rnd is not None:
        lines += [
            "",
            f"best of {rnd['n']} uniform random sequences (same budget): {rnd['max']:.4g} "
            f"({(rnd['max'] - base['mean']) / base['std']:.2f} base std devs); optimized: {best['reward']:.4g} "
            f"({best['z']:.2f} std devs)",
        ]
    if summary["mixture"]:
        lines += [
            "",
            "mixing y* into the base policy: pi_p = (1-p) pi0 + p delta(y*); KL exact, gain = p (r(y*) - E0 r) exact;",
            "sub-Gaussian bound = base std * sqrt(2 KL), the most gain a Gaussian-like reward allows at that KL",
            text_table(
                ["p", "KL (nats)", "reward gain", "gain / nat", "sub-Gaussian bound"],
                [[m["p"], m["kl"], m["gain"], m["gain_per_nat"], m["gaussian_bound"]] for m in summary["mixture"]],
            ),
        ]
    else:
        lines += ["", "no mixture table: the base sampler cannot produce y* (longer than sampling.max_new_tokens)"]
    return "\n".join(lines)
