"""The one loader for prompts: the built-in generator or any `datasets`-loadable source."""

from __future__ import annotations

import errno
import random
from pathlib import Path

from goodhart.pipeline.config.schema import PromptsConfig
from goodhart.pipeline.errors import PromptError

_LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def check_source(source: str, column: str = "prompt", key: str = "prompts.source") -> None:
    """What can be told about a prompts source without reading it as a dataset, in well under a
    second: a local file (by its suffix, or because it exists) that is missing, a symlink loop,
    a directory, empty, or binary where text is expected is a PromptError naming `key` -- not
    "couldn't reach ... on the Hub", which is what `datasets` says of a path it cannot use."""
    if source == "builtin":
        return
    p = Path(source)
    try:
        exists, is_link = p.exists(), p.is_symlink()
    except OSError as e:  # ENAMETOOLONG and the like: not a usable path
        raise PromptError(f"{key} {source!r}: {e.strerror}") from None
    if p.suffix not in _LOCAL_BUILDERS:
        if p.is_dir():
            return  # a local dataset directory: datasets reads it
        if exists or is_link:
            raise PromptError(
                f"{key} {p}: a local file must be .jsonl, .json, .csv or .parquet (a hub dataset is named namespace/name)"
            )
        if source.startswith(("/", "./", "../", "~")):  # a path, not a hub name
            raise PromptError(f"{key}: not found: {p}")
        return  # a hub dataset name: datasets loads it (or says it is not cached)
    if is_link and not exists:
        try:
            p.resolve(strict=True)
        except RuntimeError:  # Python 3.11 says "Symlink loop"
            raise PromptError(f"{key} {p}: a symbolic link loop; point it at the prompts file") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise PromptError(f"{key} {p}: a symbolic link loop; point it at the prompts file") from None
        raise PromptError(f"{key} {p}: a symbolic link to a file that is not there")
    if not exists:
        raise PromptError(f"{key}: file not found: {p}")
    if not p.is_file():
        raise PromptError(f"{key} {p}: not a file (a directory?); expected a .jsonl, .json, .csv or .parquet file")
    try:
        with p.open("rb") as f:
            head = f.read(65536)
    except OSError as e:
        raise PromptError(f"{key} {p}: cannot be read ({e.strerror})") from None
    if not head.strip():
        raise PromptError(f"{key} {p} is empty; expected rows with a '{column}' column")
    if p.suffix != ".parquet" and (b"\x00" in head or not _utf8_prefix(head)):
        raise PromptError(f"{key} {p}: binary data, not {p.suffix[1:]} text; expected rows with a '{column}' column")


def _utf8_prefix(b: bytes) -> bool:
    """Whether `b` (the first bytes of a file) is UTF-8, allowing a character cut at the end."""
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        return e.start >= len(b) - 3 and e.reason == "unexpected end of data"


def _read_source(cfg: PromptsConfig) -> list[str]:
    from datasets import load_dataset

    check_source(cfg.source, cfg.column)
    p = Path(cfg.source)
    if p.suffix in _LOCAL_BUILDERS:
        try:
            ds = load_dataset(_LOCAL_BUILDERS[p.suffix], data_files=str(p), split="train")
        except Exception as e:  # a torn or foreign local file: name it, not the Hub
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise PromptError(f"prompts.source {p} could not be read as {p.suffix[1:]} ({first})") from None
    else:
        try:
            ds = load_dataset(cfg.source, split=cfg.split)
        except (ConnectionError, OSError, ValueError) as e:  # offline and not cached, no such dataset
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise PromptError(
                f"prompts.source {cfg.source!r}: not a local .jsonl/.json/.csv/.parquet file, and the hub dataset "
                f"could not be loaded ({first})"
            ) from None
    if cfg.column not in ds.column_names:
        raise PromptError(
            f"prompts.column '{cfg.column}' is not in {cfg.source} (columns: {', '.join(ds.column_names)})"
        )
    return [str(x) for x in ds[cfg.column]]  # datasets 5: a Column, not a list


def load_prompts(cfg: PromptsConfig, grown_from: int | None = None) -> tuple[list[str], list[str]]:
    """(train, eval): disjoint, shuffled by `seed`; eval is taken first so that changing
    n_train never changes the held-out set. `grown_from` (sampling.grown_from.n_eval, a pool
    grown by resolve rounds): the first pass's grown_from eval prompts, then the train prompts
    exactly as that pass had them, then the extra eval prompts after them (base/grow.py)."""
    need = cfg.n_train + cfg.n_eval
    first = cfg.n_eval if grown_from is None else grown_from
    if cfg.source == "builtin":
        from goodhart.pipeline.base.corpus import builtin_prompts

        # The generator is already seeded and prefix-stable (n prompts are the first n of
        # n + 1), so no shuffle: eval is the first n_eval whatever n_train is.
        pool = builtin_prompts(need, seed=cfg.seed)
        return _split(pool, cfg, first)
    pool = list(dict.fromkeys(_read_source(cfg)))  # de-duplicate, keep order
    if len(pool) < need:
        raise PromptError(
            f"prompts.source {cfg.source} has {len(pool)} distinct prompts; "
            f"n_eval + n_train = {cfg.n_eval} + {cfg.n_train} = {need} are needed"
        )
    random.Random(cfg.seed).shuffle(pool)
    return _split(pool, cfg, first)


def _split(pool: list[str], cfg: PromptsConfig, first: int) -> tuple[list[str], list[str]]:
    """(train, eval) from the ordered pool: eval's first `first`, train next, then eval's rest."""
    train_end = first + cfg.n_train
    return pool[first:train_end], pool[:first] + pool[train_end : train_end + cfg.n_eval - first]
