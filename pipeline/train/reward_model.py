"""`goodhart train-rm`: a learned proxy reward from gold-labelled comparisons (Gao et al. 2022).

Steps, each seeded by the config:
1. prompts: the split of `prompts_source`; the first `reserve` (a sweep's eval prompts under the
   same seed) are skipped, the next `heldout_prompts` test the model, the rest train it (with
   `shards` > 1, only block `shard` of them: models of other shards share no comparison);
2. completions of the base policy, `sampling.n` per prompt, sampled in blocks of BLOCK prompts
   and cached per block, so a larger data size reuses a smaller one's samples;
3. pairs of completions of one prompt, labelled by the gold utility through the noise model
   (`LabelNoise`);
4. a one-output sequence classifier on the backbone, trained with TRL's RewardTrainer
   (Bradley-Terry loss -log sigmoid(r_chosen - r_rejected)) on pre-tokenized pairs: the text is
   prompt + completion tokenized exactly as the `hf` reward tokenizes it at scoring time;
5. the checkpoint is saved (LoRA adapters merged), reloaded through the `hf` reward, and its
   held-out figures (pairwise accuracy against gold, Pearson and Spearman with gold) computed
   from the reloaded copy: the card states what a sweep will see.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from goodhart.eval import metrics as M
from goodhart.pipeline.base.measure import StepLogger
from goodhart.pipeline.config.reward_model import LabelNoise, RewardModelConfig
from goodhart.pipeline.config.schema import PromptsConfig, RunConfig
from goodhart.pipeline.errors import ConfigError
from goodhart.pipeline.io import atomic_write_json, atomic_write_text, read_json, short_hash

BLOCK = 256
"""Prompts per sampling block (the unit of the completion cache)."""
CARD_JSON = "rm_card.json"
"""Machine-readable card, written last: its presence marks a finished checkpoint."""


def _no_log(metrics: dict[str, float], step: int) -> None:
    pass


def config_hash(cfg: RewardModelConfig) -> str:
    """What changes the trained model (not its name, output dir or tracking). Unsharded (shards 1),
    the shard keys are left out, and so is an unset `sampling.grown_from`: a checkpoint trained
    before those keys existed keeps its hash (tests/test_reward_model.py pins one)."""
    d = cfg.model_dump(mode="json", exclude={"name", "out", "tracking", "tracking_uri", "experiment"})
    if cfg.shards == 1:
        d.pop("shards"), d.pop("shard")
    if d["sampling"].get("grown_from") is None:  # a run's key (resolve rounds), added after checkpoints
        d["sampling"].pop("grown_from", None)  # were trained: unset, it leaves their hashes as they were
    return short_hash(d, 10)


def default_out(cfg: RewardModelConfig) -> Path:
    return Path(cfg.out) if cfg.out else Path("runs") / "rm" / f"{cfg.name}-{config_hash(cfg)}"


@dataclass
class Pairs:
    """Training comparisons: indices into the flat training samples, and label bookkeeping."""

    chosen: np.ndarray
    rejected: np.ndarray
    agrees_with_gold: float
    """Fraction of labels that pick the completion with the higher gold (gold ties excluded)."""
    rounds: int
    """Random pairings of each prompt's completions it took to collect the pairs."""


@dataclass
class RMResult:
    path: Path
    card: dict[str, Any]
    reused: bool = False
    heldout: dict[str, Any] = field(default_factory=dict)
    """prompts, completions (flat), gold and rm scores of the held-out samples."""
    model: Any = None
    tokenizer: Any = None


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def split_prompts(cfg: RewardModelConfig, n_train: int) -> tuple[list[str], list[str]]:
    """(train, heldout) prompts, both after the `reserve` skipped ones."""
    from goodhart.pipeline.base.prompts import load_prompts

    pc = PromptsConfig(
        source=cfg.prompts_source,
        column=cfg.prompts_column,
        seed=cfg.prompts_seed,
        n_train=n_train,
        n_eval=cfg.reserve + cfg.heldout_prompts,
    )
    try:
        train, ev = load_prompts(pc)
    except ValueError as e:  # the built-in generator runs out of distinct prompts
        raise ConfigError(
            f"train-rm: n_pairs={cfg.n_pairs} needs {n_train} training prompts: {e}; "
            f"raise sampling.n (completions per prompt, now {cfg.sampling.n}) or lower n_pairs"
        ) from None
    from goodhart.pipeline.base.models import format_prompts

    return format_prompts(cfg.policy, train), format_prompts(cfg.policy, ev[cfg.reserve :])


def shard_prompts(cfg: RewardModelConfig, n_train: int) -> tuple[list[str], list[str]]:
    """(this shard's n_train training prompts, the held-out prompts): the training prompts of all
    `shards` parts, cut into disjoint blocks; shard 0 of any count is the unsharded model's."""
    train, held = split_prompts(cfg, n_train * cfg.shards)
    return train[cfg.shard * n_train : (cfg.shard + 1) * n_train], held


def sample_blocks(cfg: RewardModelConfig, prompts: list[str], seed: int, progress: bool, what: str) -> list[list[str]]:
    """sampling.n completions per prompt, sampled (or loaded) BLOCK prompts at a time."""
    from goodhart.pipeline.base.pool import cached_completions

    run = RunConfig(model=cfg.policy, sampling=cfg.sampling)
    out: list[list[str]] = []
    n_blocks = -(-len(prompts) // BLOCK)
    for b in range(n_blocks):
        block = prompts[b * BLOCK : (b + 1) * BLOCK]
        desc = f"{what} {b + 1}/{n_blocks}"
        _, comps = cached_completions(run, block, cfg.sampling.n, seed * 100_003 + b, progress, desc)
        out.extend(comps)
    return out


def label_pairs(
    gold: np.ndarray, n_pairs: int, noise: LabelNoise, rng: np.random.Generator, max_rounds: int | None = None
) -> Pairs:
    """Pairs within each row of gold (P prompts x k completions), labelled through `noise`.

    Each round pairs every prompt's completions at random (k // 2 disjoint pairs per prompt);
    rounds repeat until n_pairs pairs are kept. Exact gold ties carry no label and are dropped,
    except under Bradley-Terry, where a tie is a fair coin like any small difference."""
    P, k = gold.shape
    max_rounds = max_rounds or max(1, k - 1)
    sd = float(gold.std()) or 1.0
    chosen, rejected, agree, total = [], [], 0, 0
    kept, rounds = 0, 0
    while kept < n_pairs and rounds < max_rounds:
        rounds += 1
        perm = np.argsort(rng.random((P, k)), axis=1)[:, : 2 * (k // 2)]
        rows = np.repeat(np.arange(P), k // 2)
        a = rows * k + perm[:, 0::2].ravel()
        b = rows * k + perm[:, 1::2].ravel()
        ga, gb = gold.ravel()[a], gold.ravel()[b]
        diff = ga - gb
        if noise.kind == "bradley_terry":
            keep = np.ones_like(diff, dtype=bool)
            a_wins = rng.random(diff.shape) < 1.0 / (1.0 + np.exp(-diff / (noise.temperature * sd)))
        else:
            keep = diff != 0
            a_wins = diff > 0
            if noise.kind == "flip":
                a_wins = a_wins ^ (rng.random(diff.shape) < noise.flip_rate)
        a, b, a_wins, diff = a[keep], b[keep], a_wins[keep], diff[keep]
        c, r = np.where(a_wins, a, b), np.where(a_wins, b, a)
        informative = diff != 0
        agree += int(((diff > 0) == a_wins)[informative].sum())
        total += int(informative.sum())
        chosen.append(c)
        rejected.append(r)
        kept += c.size
    if kept < n_pairs:
        raise ConfigError(
            f"train-rm: only {kept} of n_pairs={n_pairs} comparisons without a gold tie after {rounds} pairings; "
            "raise sampling.n or lower n_pairs"
        )
    return Pairs(
        np.concatenate(chosen)[:n_pairs],
        np.concatenate(rejected)[:n_pairs],
        agree / total if total else float("nan"),
        rounds,
    )


def heldout_figures(gold: np.ndarray, rm: np.ndarray) -> dict[str, float]:
    """Agreement of rm with gold on held-out samples (P prompts x k): pairwise accuracy over all
    within-prompt pairs whose gold differs (an rm tie counts one half), Pearson and Spearman over
    all samples."""
    from scipy import stats

    P, k = gold.shape
    i, j = np.triu_indices(k, 1)
    dg, dr = gold[:, i] - gold[:, j], rm[:, i] - rm[:, j]
    informative = dg != 0
    right = np.where(dr == 0, 0.5, (np.sign(dr) == np.sign(dg)).astype(float))
    acc = float(right[informative].mean()) if informative.any() else float("nan")
    g, r = gold.ravel(), rm.ravel()
    pearson = float(stats.pearsonr(g, r)[0]) if g.std() > 0 and r.std() > 0 else float("nan")
    spearman = float(stats.spearmanr(g, r)[0]) if g.std() > 0 and r.std() > 0 else float("nan")
    return {
        M.RM_HELDOUT_ACCURACY: acc,
        M.RM_HELDOUT_PEARSON: pearson,
        M.RM_HELDOUT_SPEARMAN: spearman,
        M.RM_HELDOUT_PAIRS: int(informative.sum()),
    }


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def _tokenize(tok, texts: list[str], max_length: int) -> list[list[int]]:
    # As HFClassifierReward tokenizes at scoring time (no EOS appended), truncated the same way.
    return tok(texts, truncation=True, max_length=max_length)["input_ids"]


def _load_backbone(cfg: RewardModelConfig, progress: bool):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from goodhart.pipeline.base.models import model_path

    path = model_path(cfg.backbone, progress)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(cfg.seed)  # the score head's initialisation
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=getattr(torch, cfg.backbone.dtype)
    )
    model.config.pad_token_id = tok.pad_token_id
    return model, tok, path


def _peft_config(cfg: RewardModelConfig):
    if cfg.lora is None:
        return None
    from peft import LoraConfig, TaskType

    lo = cfg.lora
    return LoraConfig(
        task_type=TaskType.SEQ_CLS,  # keeps the new score head trainable (modules_to_save)
        r=lo.r,
        lora_alpha=lo.alpha,
        lora_dropout=lo.dropout,
        target_modules=lo.target_modules,
    )


def _curve_callback(log: StepLogger):
    from transformers import TrainerCallback

    names = {
        "loss": M.RM_TRAIN_LOSS,
        "accuracy": M.RM_TRAIN_ACCURACY,
        "margin": M.RM_TRAIN_MARGIN,
        "learning_rate": M.LEARNING_RATE,
        "grad_norm": M.GRAD_NORM,
    }

    class Curve(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            out = {names[k]: float(v) for k, v in (logs or {}).items() if k in names}
            if out:
                log(out, int(state.global_step))

    return Curve()


def train_reward_model(
    cfg: RewardModelConfig, out: Path | None = None, progress: bool = True, log: StepLogger = _no_log
) -> RMResult:
    """Sample, label, train, save, reload and test one reward model (or reuse a finished one)."""
    import torch
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from goodhart.pipeline.base.models import model_identity, resolve_device
    from goodhart.pipeline.base.scoring import build_reward
    from goodhart.rewards.plugins import HFClassifierReward

    if not progress:  # --quiet: no load reports, no per-map bars
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    out = Path(out) if out else default_out(cfg)
    chash = config_hash(cfg)
    if (out / CARD_JSON).is_file():
        card = read_json(out / CARD_JSON)
        if card.get("config_hash") == chash:
            return RMResult(out, card, reused=True)
        raise ConfigError(
            f"train-rm: {out} holds a reward model of another config (hash {card.get('config_hash')} != {chash}); "
            "choose another `out` or remove it"
        )
    t0 = time.time()
    k = cfg.sampling.n
    n_train_prompts = math.ceil(cfg.n_pairs / (k // 2))
    train_p, held_p = shard_prompts(cfg, n_train_prompts)
    train_c = sample_blocks(cfg, train_p, cfg.seed, progress, "train completions")
    held_c = sample_blocks(cfg, held_p, cfg.seed + 1, progress, "held-out completions")
    t_sample = time.time() - t0

    gold_reward = build_reward(cfg.utility)
    flat_p = [p for p, row in zip(train_p, train_c) for _ in row]
    flat_c = [c for row in train_c for c in row]
    gold = gold_reward.score(flat_p, flat_c).reshape(len(train_p), k)
    pairs = label_pairs(gold, cfg.n_pairs, cfg.noise, np.random.default_rng(cfg.seed))

    model, tok, backbone_path = _load_backbone(cfg, progress)
    ids = _tokenize(tok, [p + c for p, c in zip(flat_p, flat_c)], cfg.training.max_length)
    ds = Dataset.from_dict(
        {"chosen_ids": [ids[i] for i in pairs.chosen], "rejected_ids": [ids[i] for i in pairs.rejected]}
    )
    tr = cfg.training
    device = resolve_device(cfg.backbone.device)
    work = Path(tempfile.mkdtemp(prefix="goodhart-rm-"))
    try:
        # TRL 1.16 sets the renamed `gradient_checkpointing` itself: not the user's to act on.
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
        args = RewardConfig(
            output_dir=str(work),
            num_train_epochs=tr.epochs,
            learning_rate=tr.lr,
            per_device_train_batch_size=tr.batch_size,
            weight_decay=tr.weight_decay,
            warmup_steps=tr.warmup_ratio,  # a float below 1 is a ratio of the total steps
            lr_scheduler_type="linear",
            max_length=tr.max_length,
            center_rewards_coefficient=tr.center_rewards_coefficient,
            logging_steps=tr.logging_steps,
            seed=cfg.seed,
            data_seed=cfg.seed,
            save_strategy="no",
            report_to="none",
            disable_tqdm=not progress,
            use_cpu=device == "cpu",
            # TRL defaults to bf16 autocast; on CPU that is slower than float32 and it stays wrapped
            # around the in-memory model's forward after training.
            bf16=device != "cpu" and cfg.backbone.dtype != "float16",
            dataloader_num_workers=0,
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=ds,
            processing_class=tok,
            peft_config=_peft_config(cfg),
            callbacks=[_curve_callback(log)],
        )
        if not progress:  # with its bar off, Trainer prints every log dict instead
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        t1 = time.time()
        trainer.train()
        t_train = time.time() - t1
        final = trainer.model
        if cfg.lora is not None:
            final = final.merge_and_unload()  # a plain checkpoint: no peft needed to load it
        final = final.to("cpu").eval()
        final.config.pad_token_id = tok.pad_token_id
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.iterdir():  # a half-written earlier attempt (no card): start clean
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        final.save_pretrained(out)
        tok.save_pretrained(out)
        from goodhart.pipeline.io import follow_umask

        follow_umask(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # The held-out figures come from the reloaded checkpoint: what a sweep's `hf` reward will see.
    rm = HFClassifierReward(str(out), batch_size=64, max_length=tr.max_length, device="cpu")
    hp = [p for p, row in zip(held_p, held_c) for _ in row]
    hc = [c for row in held_c for c in row]
    h_gold = gold_reward.score(hp, hc)
    h_rm = rm.score(hp, hc)
    figures = heldout_figures(h_gold.reshape(len(held_p), k), h_rm.reshape(len(held_p), k))
    card = {
        "name": cfg.name,
        "config_hash": chash,
        "utility": cfg.utility.model_dump(mode="json"),
        "n_pairs": cfg.n_pairs,
        "n_train_prompts": len(train_p),
        "shard": f"{cfg.shard} of {cfg.shards}",
        "completions_per_prompt": k,
        "pairing_rounds": pairs.rounds,
        "noise": cfg.noise.model_dump(mode="json"),
        "label_agreement_with_gold": pairs.agrees_with_gold,
        "policy": model_identity(cfg.policy),
        "backbone": model_identity(cfg.backbone),
        "backbone_path": str(backbone_path),
        "lora": cfg.lora.model_dump(mode="json") if cfg.lora else None,
        "parameters": int(sum(p.numel() for p in final.parameters())),
        "training": tr.model_dump(mode="json"),
        "seed": cfg.seed,
        "final_train_loss": _last(trainer.state.log_history, "loss"),
        "heldout_prompts": len(held_p),
        "heldout_samples": int(h_gold.size),
        "heldout_gold_mean": float(h_gold.mean()),
        "heldout_gold_sd": float(h_gold.std()),
        "heldout_rm_mean": float(h_rm.mean()),
        "heldout_rm_sd": float(h_rm.std()),
        **figures,
        "seconds_sampling": round(t_sample, 1),
        "seconds_training": round(t_train, 1),
        "seconds_total": round(time.time() - t0, 1),
        "torch_threads": torch.get_num_threads(),
        "use_as": {"reward": {"type": "hf", "path": str(out)}, "utility": cfg.utility.model_dump(mode="json")},
        "config": cfg.model_dump(mode="json"),
    }
    atomic_write_text(out / "README.md", model_card(card))
    atomic_write_json(out / CARD_JSON, card)  # last: marks the checkpoint finished
    heldout = {"prompts": hp, "completions": hc, "gold": h_gold, "rm": h_rm}
    return RMResult(out, card, heldout=heldout, model=final, tokenizer=tok)


def _last(history: list[dict], key: str) -> float | None:
    vals = [h[key] for h in history if key in h]
    return float(vals[-1]) if vals else None


def model_card(card: dict[str, Any]) -> str:
    """A Hugging Face model card (README.md with YAML front matter) for the checkpoint."""
    noise = card["noise"]
    noise_txt = {
        "none": "none (the higher-gold completion is chosen; gold ties dropped)",
        "bradley_terry": f"Bradley-Terry, temperature {noise['temperature']:g} gold-sd",
        "flip": f"labels flipped with probability {noise['flip_rate']:g}",
    }[noise["kind"]]
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "tags: [reward-model, goodhart]",
        "---",
        f"# Reward model `{card['name']}`",
        "",
        "A one-output sequence classifier trained by `goodhart train-rm` with TRL's RewardTrainer",
        "(loss -log sigmoid(r_chosen - r_rejected)) on comparisons of base-policy completions labelled by a gold utility.",
        "It scores `prompt + completion` (no separator, no EOS appended).",
        "",
        "| | |",
        "|---|---|",
        f"| gold utility | `{card['utility']}` |",
        f"| training comparisons | {card['n_pairs']} ({card['n_train_prompts']} prompts x {card['completions_per_prompt']} completions) |",
        f"| label noise | {noise_txt}; labels agreeing with gold: {card['label_agreement_with_gold']:.3f} |",
        f"| policy sampled | `{card['policy']}` |",
        f"| backbone | `{card['backbone']}`{' + LoRA (merged)' if card['lora'] else ''}, {card['parameters']:,} parameters |",
        f"| fit | {card['training']['epochs']:g} epoch(s), lr {card['training']['lr']:g}, batch {card['training']['batch_size']}, seed {card['seed']} |",
        f"| held-out pairwise accuracy vs gold | **{card[M.RM_HELDOUT_ACCURACY]:.3f}** over {card[M.RM_HELDOUT_PAIRS]} pairs |",
        f"| held-out Pearson / Spearman with gold | {card[M.RM_HELDOUT_PEARSON]:.3f} / {card[M.RM_HELDOUT_SPEARMAN]:.3f} ({card['heldout_samples']} samples, {card['heldout_prompts']} prompts) |",
        f"| wall time | sampling {card['seconds_sampling']:g} s, training {card['seconds_training']:g} s, total {card['seconds_total']:g} s |",
        "",
        "Use it as the proxy of a run or sweep (one line), with the gold as the utility:",
        "",
        "```yaml",
        f"reward: {{type: hf, path: {card['use_as']['reward']['path']}}}",
        f"utility: {card['utility']['type']}",
        "```",
        "",
        f"Config hash `{card['config_hash']}`; the full config and figures are in `{CARD_JSON}`.",
    ]
    return "\n".join(lines) + "\n"
