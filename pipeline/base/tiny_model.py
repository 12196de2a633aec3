"""The offline built-in base model: a tiny Llama pretrained on `goodhart.pipeline.base.corpus` text.

`ensure_tiny_model()` returns a normal Hugging Face directory (safetensors weights, config,
generation config, fast byte-level BPE tokenizer) that `AutoModelForCausalLM` and
`AutoTokenizer` load with no network. The first call builds it (~1 minute on 2 cores),
later calls only check that the directory exists:

    <cache>/models/tiny-<recipe hash>/
        model.safetensors, config.json, generation_config.json,
        tokenizer.json, tokenizer_config.json, ...
        goodhart_build.json     # completion marker: recipe, parameter count, loss, timings

The cache is the `cache_dir` argument, else $GOODHART_CACHE, else ~/.cache/goodhart.

Build, in order: corpus lines -> byte-level BPE tokenizer (`tokenizers`) -> packed
training stream `<s> line </s> <s> line </s> ...` cut into `max_len` blocks -> AdamW with
linear warmup and cosine decay for a fixed number of steps. Everything is seeded by the
recipe. The directory is written next to its final place and renamed into it under a
file lock, so two concurrent builders never expose a half-written model.

Tokenization: the tokenizer prepends `<s>` (no `</s>`) and pads on the left, so a batch of
prompts can go straight into `model.generate`; the model ends text with `</s>`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from goodhart.pipeline.base.corpus import sentences
from goodhart.pipeline.io import cache_dir as cache_dir_default

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
"""Special tokens; their ids are 0, 1, 2 in that order."""

MARKER = "goodhart_build.json"
"""Completion marker, written last inside the model directory."""


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the built model; its hash names the cache directory."""

    vocab_size: int = 512
    """Byte-level BPE vocabulary size, special tokens included (256 bytes + merges + 3)."""
    hidden: int = 128
    """Model width (`hidden_size`)."""
    intermediate: int = 0
    """MLP width; 0 means `hidden * 8/3` rounded up to a multiple of 32 (Llama's ratio)."""
    layers: int = 4
    """Number of decoder layers."""
    heads: int = 4
    """Attention heads (also key/value heads: no grouped-query attention)."""
    max_len: int = 64
    """Training block length and `max_position_embeddings`."""
    n_sentences: int = 20_000
    """Corpus lines generated for tokenizer and LM training (each 1-3 sentences)."""
    steps: int = 360
    """Optimizer steps."""
    batch: int = 32
    """Blocks of `max_len` tokens per step."""
    lr: float = 3e-3
    """Peak AdamW learning rate."""
    warmup: int = 20
    """Linear warm-up steps before the cosine decay."""
    min_lr_ratio: float = 0.1
    """Cosine decays to `lr * min_lr_ratio`."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    seed: int = 0
    """Seeds the corpus, the initialization and the batch order."""
    revision: int = 1
    """Bump when corpus.py or the build code changes their output, to invalidate caches."""

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"TinyRecipe: hidden={self.hidden} must be a multiple of heads={self.heads}")
        if self.vocab_size < 256 + 3:
            raise ValueError(f"TinyRecipe: vocab_size={self.vocab_size} must be >= 259 (bytes + specials)")
        for name in ("layers", "max_len", "n_sentences", "steps", "batch"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TinyRecipe: {name}={getattr(self, name)} must be > 0")

    @property
    def intermediate_size(self) -> int:
        if self.intermediate:
            return self.intermediate
        return 32 * math.ceil(self.hidden * 8 / 3 / 32)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def recipe_hash(self) -> str:
        """Short sha256 of the recipe's JSON (12 hex digits)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]


def is_complete(model_dir: Path) -> bool:
    return (model_dir / MARKER).is_file()


def ensure_tiny_model(cache_dir: Path | None = None, recipe: TinyRecipe = TinyRecipe(), progress: bool = True) -> Path:
    """Return `<cache>/models/tiny-<hash>/`, building it first if it is not there yet.

    Safe to call from several processes at once: one builds under a file lock, the others
    wait and then find the finished directory.
    """
    models = Path(cache_dir).expanduser() if cache_dir is not None else cache_dir_default()
    models = models / "models"
    final = models / f"tiny-{recipe.recipe_hash()}"
    if is_complete(final):  # fast path: no lock, no heavy imports
        return final

    models.mkdir(parents=True, exist_ok=True)
    with _file_lock(models / f"{final.name}.lock"):
        if is_complete(final):  # another process finished while we waited
            return final
        for stale in models.glob(f".{final.name}.tmp-*"):  # left by a killed builder
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # incomplete leftovers (should not happen with the rename)
            shutil.rmtree(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=models))
        try:
            _build(tmp, recipe, progress)
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
            try:
                os.rename(tmp, final)
            except OSError:  # lost a race without a working lock: keep the winner's copy
                if not is_complete(final):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------- build steps
def train_tokenizer(lines: list[str], vocab_size: int, max_len: int):
    """Byte-level BPE on `lines`, wrapped as a `PreTrainedTokenizerFast`.

    No prefix space (so `decode(prompt_ids + completion_ids)` is exactly the text), `<s>`
    prepended by the post-processor, left padding with `<pad>`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        model_max_length=max_len,
        clean_up_tokenization_spaces=False,
    )


def _token_stream(tokenizer, lines: list[str]) -> list[int]:
    """`<s> line </s>` for every line, concatenated."""
    ids: list[int] = []
    # the backend directly: lines longer than model_max_length are fine here (no warning)
    for enc in tokenizer.backend_tokenizer.encode_batch(lines):  # each starts with <s>
        ids.extend(enc.ids)
        ids.append(tokenizer.eos_token_id)
    return ids


def _thread_count() -> int:
    """$OMP_NUM_THREADS when it is set, else the cores that are free now (base/threads.py): on
    busy cores two threads ran the build 4.5x slower than one."""
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    from goodhart.pipeline.base.threads import choose_threads

    return choose_threads(1)


def _build(out: Path, recipe: TinyRecipe, progress: bool) -> None:
    import torch
    import transformers
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    t0, c0 = time.perf_counter(), time.process_time()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(_thread_count())
    try:
        # ---- corpus and tokenizer
        lines = sentences(recipe.n_sentences, recipe.seed)
        tokenizer = train_tokenizer(lines, recipe.vocab_size, recipe.max_len)
        stream = torch.tensor(_token_stream(tokenizer, lines), dtype=torch.long)
        n_blocks = len(stream) // recipe.max_len
        blocks = stream[: n_blocks * recipe.max_len].view(n_blocks, recipe.max_len)  # (N, T)
        t_tok = time.perf_counter() - t0

        # ---- model
        torch.manual_seed(recipe.seed)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=recipe.hidden,
            intermediate_size=recipe.intermediate_size,
            num_hidden_layers=recipe.layers,
            num_attention_heads=recipe.heads,
            num_key_value_heads=recipe.heads,
            max_position_embeddings=recipe.max_len,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(config)
        n_params = sum(p.numel() for p in model.parameters())

        # ---- pretraining: AdamW, linear warm-up then cosine to lr * min_lr_ratio
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=recipe.lr,
            betas=(0.9, 0.95),
        )

        def lr_factor(step: int) -> float:
            if step < recipe.warmup:
                return (step + 1) / recipe.warmup
            t = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
            return recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        gen = torch.Generator().manual_seed(recipe.seed)
        model.train()
        losses: list[float] = []
        bar = tqdm(range(recipe.steps), desc=f"pretrain tiny-{recipe.recipe_hash()}", disable=not progress)
        for step in bar:
            idx = torch.randint(n_blocks, (recipe.batch,), generator=gen)
            x = blocks[idx]  # (B, T)
            loss = model(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % 10 == 0 or step == recipe.steps - 1:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        bar.close()
        model.eval()
        final_loss = sum(losses[-20:]) / len(losses[-20:])

        # ---- save: tokenizer, model, generation defaults, then the marker
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        tokenizer.save_pretrained(out)
        bars_were_on = hf_logging.is_progress_bar_enabled()
        if not progress:  # save_pretrained draws its own "Writing model shards" bar
            hf_logging.disable_progress_bar()
        try:
            model.save_pretrained(out)
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        build_s = time.perf_counter() - t0
        info = {
            "recipe": dataclasses.asdict(recipe),
            "recipe_hash": recipe.recipe_hash(),
            "n_params": n_params,
            "vocab_size": len(tokenizer),
            "train_tokens": int(len(stream)),
            "final_loss": round(final_loss, 4),
            "first_loss": round(losses[0], 4),
            "tokenizer_seconds": round(t_tok, 2),
            "build_seconds": round(build_s, 2),
            "build_cpu_seconds": round(time.process_time() - c0, 2),  # all threads; wall on a busy machine misleads
            "threads": torch.get_num_threads(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        (out / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        if progress:
            print(
                f"tiny model: {n_params / 1e6:.2f}M params | vocab {len(tokenizer)} | "
                f"{len(stream) / 1e3:.0f}k tokens | loss {losses[0]:.2f} -> {final_loss:.3f} | "
                f"{build_s:.0f} s ({t_tok:.1f} s corpus+tokenizer)",
                file=sys.stderr,
            )
    finally:
        torch.set_num_threads(old_threads)
