"""The three probe modes. Each scores, diagnoses, writes `<mode>.json` (+ `<mode>.npz`) into
the probe directory and returns a `ProbeResult` (summary, metrics, files, printable text).

    random    n uniform random token sequences of `length` tokens after the prompt, scored
    base      n completions of the prompt from the base model, scored
    optimize  ACG over `length` input tokens (HF rewards only), then the reward reached in base
              std devs and the KL / gain of mixing the best sequence into the base policy
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from goodhart.eval import metrics as M
from goodhart.pipeline.config.schema import HFReward, RunConfig
from goodhart.pipeline.errors import ConfigError
from goodhart.pipeline.io import atomic_savez, atomic_write_json, read_json, short_hash
from goodhart.pipeline.probe.config import ProbeConfig

MARKER = "probe.json"
"""Marks a probe directory: the reward, model and prompt every mode there was run against."""

QUANTILES = (0.5, 0.9, 0.99, 0.999)


@dataclass
class ProbeResult:
    mode: str
    dir: Path
    summary: dict[str, Any]
    metrics: dict[str, float]
    text: str
    files: list[Path] = field(default_factory=list)
    step_metrics: list[tuple[int, dict[str, float]]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# where, what against
# ---------------------------------------------------------------------------------------------
def probe_dir(cfg: RunConfig, pcfg: ProbeConfig) -> Path:
    return Path(pcfg.dir) if pcfg.dir else Path(cfg.output_dir) / f"probe-{cfg.name}"


def context_prompt(cfg: RunConfig, pcfg: ProbeConfig) -> str:
    if pcfg.prompt is not None:
        return pcfg.prompt
    from goodhart.pipeline.base.prompts import load_prompts

    return load_prompts(cfg.prompts)[1][0]


def reward_key(cfg: RunConfig) -> str:
    return short_hash({"reward": cfg.reward.model_dump(), "clip": cfg.clip and cfg.clip.model_dump()})


def mark_dir(root: Path, cfg: RunConfig, prompt: str) -> None:
    """Write (or check) the probe directory's marker: one reward and one prompt per directory,
    so the report never puts distributions of different rewards on one plot."""
    want = {"reward": cfg.reward.model_dump(mode="json"), "reward_key": reward_key(cfg), "prompt": prompt}
    if (root / MARKER).is_file():
        have = read_json(root / MARKER)
        if have.get("reward_key") != want["reward_key"] or have.get("prompt") != prompt:
            raise ConfigError(
                f"{root} holds a probe of another reward or prompt; choose another probe.dir (or name=...)"
            )
        return
    atomic_write_json(root / MARKER, {**want, "model": cfg.model.model_dump(mode="json")})


# ---------------------------------------------------------------------------------------------
# shared: describe a sample, diagnose its tail
# ---------------------------------------------------------------------------------------------
def describe(x: np.ndarray) -> dict[str, float]:
    qs = np.quantile(x, QUANTILES)
    out = {"n": int(x.size), "mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0}
    out |= {"min": float(x.min()), "max": float(x.max())}
    out |= {f"q{q:g}": float(v) for q, v in zip(QUANTILES, qs)}
    return out


def distribution_metrics(d: dict[str, Any]) -> dict[str, float]:
    return {
        M.PROBE_N: d["n"],
        M.PROBE_MEAN: d["mean"],
        M.PROBE_STD: d["std"],
        M.PROBE_Q99: d["q0.99"],
        M.PROBE_Q999: d["q0.999"],
        M.PROBE_MAX: d["max"],
    }


def diagnose(x: np.ndarray, root: Path, mode: str, title: str, plots: bool) -> tuple[dict[str, Any], str, list[Path]]:
    """The tail verdict of eval.tails (light / heavy / inconclusive) and the tail plots."""
    from goodhart.eval.tails import tail_verdict

    if x.size < 500 or np.unique(x).size < 20:
        why = f"{x.size} samples, {np.unique(x).size} distinct: tail diagnostics need >= 500 and >= 20"
        return {"verdict": "not run", "why": why}, f"tails: not run ({why})", []
    rep = tail_verdict(x)
    info = {
        "verdict": rep.verdict,
        "reasons": list(rep.reasons),
        "qq_growth": rep.qq_trend.slope,
        "qq_growth_interval": list(rep.qq_trend.interval),
        "gpd_xi": rep.gpd.xi,
        "gpd_xi_interval": list(rep.gpd.xi_interval),
        "hill_gamma": rep.hill.value,
        "table": rep.table(),
    }
    files = []
    if plots:
        from goodhart.eval.plots_tails import tail_plots

        files.append(tail_plots(x, root / f"tails_{mode}.png", title))
    return info, rep.table(), files


def tail_metrics(info: dict[str, Any]) -> dict[str, float]:
    if info.get("verdict") == "not run":
        return {}
    return {M.PROBE_QQ_GROWTH: info["qq_growth"], M.PROBE_GPD_XI: info["gpd_xi"], M.PROBE_HILL: info["hill_gamma"]}


def text_table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), "-" * (sum(widths) + 2 * (len(widths) - 1)), *map(line, cells)])


def _finish(root: Path, mode: str, prompt: str, scores: np.ndarray, texts: list[str], extra: dict, pcfg, title: str):
    """Save, describe and diagnose one sample of rewards (random and base modes)."""
    d = describe(scores)
    tails, tails_text, files = diagnose(scores, root, mode, title, pcfg.tails)
    order = np.argsort(-scores)
    top = [{"reward": float(scores[i]), "text": texts[i]} for i in order[:5]]
    summary = {"mode": mode, "prompt": prompt, "distribution": d, "tails": tails, "top": top, **extra}
    files = [
        atomic_savez(root / f"{mode}.npz", rewards=scores),
        atomic_write_json(root / f"{mode}.json", summary),
        *files,
    ]
    text = "\n".join(
        [
            f"== {mode}: {d['n']} sequences after prompt {prompt!r} ({extra['scored_as']}), {extra['seconds']:.1f} s",
            text_table(
                ["mean", "std", *[f"q{q:g}" for q in QUANTILES], "max"],
                [[d["mean"], d["std"], *[d[f"q{q:g}"] for q in QUANTILES], d["max"]]],
            ),
            f"highest: {top[0]['reward']:.4g}  {top[0]['text']!r}",
            tails_text,
        ]
    )
    metrics = distribution_metrics(d) | tail_metrics(tails)
    return ProbeResult(mode, root, summary, metrics, text, files)


def text_scorer(cfg: RunConfig, progress: bool) -> Callable[[list[str], list[str]], np.ndarray]:
    """The run's proxy reward through its ordinary text path (feature-mode errors calibrated)."""
    from goodhart.pipeline.base.pool import calibrate
    from goodhart.pipeline.base.prompts import load_prompts
    from goodhart.pipeline.base.scoring import Scorer

    scorer = Scorer(cfg)
    if scorer.needs_calibration():
        calibrate(cfg, scorer, load_prompts(cfg.prompts)[0], progress)

    def score(prompts: list[str], completions: list[str]) -> np.ndarray:
        x = scorer.proxy.score(prompts, completions)
        return scorer.clip.clip(x) if scorer.clip is not None else x

    return score


def _batched(fn, n: int, batch: int, progress: bool, desc: str) -> np.ndarray:
    out = []
    for i in tqdm(range(0, n, batch), desc=desc, unit="batch", disable=not progress, leave=False):
        out.append(fn(i, min(i + batch, n)))
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------
# random, base
# ---------------------------------------------------------------------------------------------
def run_random(cfg: RunConfig, pcfg: ProbeConfig, progress: bool = True) -> ProbeResult:
    """n uniform random token sequences (the reward model's tokens for an HF reward, scored as
    ids; else the base model's tokens, decoded and scored as text)."""
    import torch

    from goodhart.pipeline.base.scoring import build_reward
    from goodhart.pipeline.probe.token_rm import TokenRM

    root, prompt, t0 = probe_dir(cfg, pcfg), context_prompt(cfg, pcfg), time.time()
    mark_dir(root, cfg, prompt)
    gen = torch.Generator().manual_seed(cfg.seed)
    n, L = pcfg.n_samples, pcfg.length
    if isinstance(cfg.reward, HFReward):
        rm = TokenRM(build_reward(cfg.reward), prompt)
        x = rm.random(n, L, gen)  # (n, L)
        scores = _batched(lambda a, b: rm.score(x[a:b], pcfg.batch_size), n, pcfg.batch_size, progress, "random")
        texts, scored_as = rm.texts(x), "reward-model token ids"
    else:
        from transformers import AutoTokenizer

        from goodhart.pipeline.base.models import model_path

        tok = AutoTokenizer.from_pretrained(model_path(cfg.model, progress))
        special = set(tok.all_special_ids)
        allowed = torch.tensor([i for i in range(len(tok)) if i not in special])
        x = allowed[torch.randint(0, len(allowed), (n, L), generator=gen)]
        texts = tok.batch_decode(x.tolist(), skip_special_tokens=True)
        score = text_scorer(cfg, progress)
        scores = _batched(lambda a, b: score([prompt] * (b - a), texts[a:b]), n, pcfg.batch_size, progress, "random")
        scored_as = "base-model tokens, decoded and scored as text"
    extra = {"length": L, "scored_as": scored_as, "seconds": time.time() - t0}
    return _finish(root, "random", prompt, scores, texts, extra, pcfg, f"reward of {n} random {L}-token sequences")


def base_samples(cfg: RunConfig, prompt: str, n: int, progress: bool) -> list[str]:
    """n completions of the prompt from the base model (cached like the sweep's base pool)."""
    from goodhart.pipeline.base.pool import cached_completions

    return cached_completions(cfg, [prompt], n, cfg.seed, progress, "base samples")[1][0]


def run_base(cfg: RunConfig, pcfg: ProbeConfig, progress: bool = True) -> ProbeResult:
    root, prompt, t0 = probe_dir(cfg, pcfg), context_prompt(cfg, pcfg), time.time()
    mark_dir(root, cfg, prompt)
    texts = base_samples(cfg, prompt, pcfg.n_samples, progress)
    score = text_scorer(cfg, progress)
    n = len(texts)
    scores = _batched(lambda a, b: score([prompt] * (b - a), texts[a:b]), n, pcfg.batch_size, progress, "scoring")
    extra = {"scored_as": "scored as text", "seconds": time.time() - t0}
    return _finish(root, "base", prompt, scores, texts, extra, pcfg, f"reward of {n} base completions")
