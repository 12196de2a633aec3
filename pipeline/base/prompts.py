"""The one loader for prompts: the built-in generator or any `datasets`-loadable source."""

from __future__ import annotations

import random
from pathlib import Path

from goodhart.pipeline.config.schema import PromptsConfig
from goodhart.pipeline.errors import PromptError

_LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _read_source(cfg: PromptsConfig) -> list[str]:
    from datasets import load_dataset

    p = Path(cfg.source)
    if p.suffix in _LOCAL_BUILDERS:
        if not p.is_file():
            raise PromptError(f"prompts.source: file not found: {p}")
        if p.stat().st_size == 0 or not p.read_bytes()[:65536].strip():
            # datasets would read an empty file as a hub dataset it "couldn't reach"
            raise PromptError(f"prompts.source {p} is empty; expected rows with a '{cfg.column}' column")
        try:
            ds = load_dataset(_LOCAL_BUILDERS[p.suffix], data_files=str(p), split="train")
        except Exception as e:  # a torn or foreign local file: name it, not the Hub
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise PromptError(f"prompts.source {p} could not be read as {p.suffix[1:]} ({first})") from None
    else:
        ds = load_dataset(cfg.source, split=cfg.split)
    if cfg.column not in ds.column_names:
        raise PromptError(
            f"prompts.column '{cfg.column}' is not in {cfg.source} (columns: {', '.join(ds.column_names)})"
        )
    return [str(x) for x in ds[cfg.column]]  # datasets 5: a Column, not a list


def load_prompts(cfg: PromptsConfig) -> tuple[list[str], list[str]]:
    """(train, eval): disjoint, shuffled by `seed`; eval is taken first so that changing
    n_train never changes the held-out set."""
    need = cfg.n_train + cfg.n_eval
    if cfg.source == "builtin":
        from goodhart.pipeline.base.corpus import builtin_prompts

        # The generator is already seeded and prefix-stable (n prompts are the first n of
        # n + 1), so no shuffle: eval is the first n_eval whatever n_train is.
        pool = builtin_prompts(need, seed=cfg.seed)
        return pool[cfg.n_eval : need], pool[: cfg.n_eval]
    pool = list(dict.fromkeys(_read_source(cfg)))  # de-duplicate, keep order
    if len(pool) < need:
        raise PromptError(
            f"prompts.source {cfg.source} has {len(pool)} distinct prompts; "
            f"n_eval + n_train = {cfg.n_eval} + {cfg.n_train} = {need} are needed"
        )
    random.Random(cfg.seed).shuffle(pool)
    return pool[cfg.n_eval : need], pool[: cfg.n_eval]
