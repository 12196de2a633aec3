"""Load, compose and override configs; turn validation failures into one clear line each.

Composition rules, in order:
1. A YAML file may name ``base: other.yaml`` (or a list); it is deep-merged over its bases.
   Paths are relative to the file, then to the configs/ directory.
2. A string where a group is expected names a file of that group: ``model: tiny`` reads
   ``configs/model/tiny.yaml``, ``reward: pareto`` reads ``configs/reward/pareto.yaml`` (also for
   ``utility`` and the ``utility`` inside a synthetic reward), ``algo: bon`` reads
   ``configs/algo/bon.yaml``. A law may be written ``student_t(df=2, scale=0.5)``.
3. Dotted ``key=value`` overrides apply last; values parse as YAML (``3`` is an int, ``[1,2]`` a list).
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from goodhart.pipeline.config.schema import LAW_PARAMS, LawConfig, RunConfig, parse_law
from goodhart.pipeline.errors import ConfigError

GROUPS = {"model": "model", "reward": "reward", "utility": "reward", "algo": "algo"}


def configs_dir() -> Path:
    """configs/ of this checkout (or $GOODHART_CONFIGS)."""
    env = os.environ.get("GOODHART_CONFIGS")
    if env:
        return Path(env)
    return _CHECKOUT_CONFIGS


_CHECKOUT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # resolved once (a sweep asks per point)


# ---------------------------------------------------------------------------------------------
# YAML files and composition
# ---------------------------------------------------------------------------------------------
MAX_YAML_NODES = 1_000_000  # a config file expands (aliases followed) to at most this many nodes
MAX_YAML_DEPTH = 100  # mappings and lists nested at most this deep (a config needs a handful)


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a duplicate key (YAML would keep the last one silently) and an
    alias bomb (a few lines whose aliases expand to billions of nodes)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for k, _ in node.value:
            key = self.construct_object(k, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(
                    f"duplicate key {key!r} (lines {seen[key] + 1} and {k.start_mark.line + 1}); keep one"
                )
            seen[key] = k.start_mark.line
        return super().construct_mapping(node, deep)

    def compose_document(self):
        node = super().compose_document()
        sizes: dict[int, int] = {}

        def size(n, depth: int) -> int:  # expanded size, each shared (aliased) node counted every time it is used
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(f"nested more than {MAX_YAML_DEPTH} levels deep")
            if id(n) in sizes:
                return sizes[id(n)]
            sizes[id(n)] = 1  # a recursive alias counts once
            kids = [c for kv in n.value for c in kv] if isinstance(n, yaml.MappingNode) else n.value
            nested = isinstance(n, (yaml.MappingNode, yaml.SequenceNode))
            total = 1 + (sum(size(c, depth + 1) for c in kids) if nested else 0)
            sizes[id(n)] = total
            if total > MAX_YAML_NODES:
                raise ConfigError(f"expands to more than {MAX_YAML_NODES:,} values (YAML aliases nested too deep?)")
            return total

        if node is not None:
            size(node, 0)
        return node


def strict_yaml(text: str) -> Any:
    """`yaml.safe_load` with the guards every config text gets, a file's or an override value's:
    a duplicate key, an alias bomb or nesting deeper than MAX_YAML_DEPTH is a ConfigError (a
    syntax error stays a yaml.YAMLError for the caller to word)."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except RecursionError:  # the composer recurses once per level, before our depth check sees it
        raise ConfigError(f"nested more than {MAX_YAML_DEPTH} levels deep") from None


_PARSED: dict[bytes, dict[str, Any]] = {}  # a file's bytes -> its parsed mapping


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's top-level mapping. Bytes parsed before are not parsed again (a sweep
    resolves `algo: bon` once per point, and parsing YAML was most of a big dry run's time)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot be read ({e.strerror})") from None
    if raw in _PARSED:
        return copy.deepcopy(_PARSED[raw])
    data = _parse_yaml(p, raw)
    if len(raw) < 1 << 16:  # config-sized files only, and not too many of them
        if len(_PARSED) >= 256:
            _PARSED.clear()
        _PARSED[raw] = copy.deepcopy(data)
    return data


def _parse_yaml(p: Path, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    try:
        data = strict_yaml(text)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def find_config(ref: str, rel_to: Path | None, group: str | None = None) -> Path:
    name = ref if ref.endswith((".yaml", ".yml")) else f"{ref}.yaml"
    candidates = []
    if rel_to is not None:
        candidates.append(rel_to / name)
    if group:
        candidates.append(configs_dir() / group / name)
    candidates.append(configs_dir() / name)
    for c in candidates:
        if c.is_file():
            return c
    where = f"configs/{group}/" if group else "configs/"
    avail = sorted(p.stem for p in (configs_dir() / (group or "")).glob("*.yaml"))
    hint = f"; available: {', '.join(avail)}" if avail else ""
    raise ConfigError(f"'{ref}' is not a config file in {where}{hint}")


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config and resolve its ``base:`` chain and group references."""
    p = Path(path)
    data = read_yaml(p)
    bases = data.pop("base", None) or []
    merged: dict[str, Any] = {}
    for b in [bases] if isinstance(bases, str) else bases:
        merged = deep_merge(merged, load_file(find_config(str(b), p.parent)))
    return resolve_groups(deep_merge(merged, data))


def _not_a_file(text: str, key: str | None) -> bool:
    """Strings under a group key that are not file names: a law shorthand with arguments
    (``gaussian(scale=0.5)``, for a distributional reward's utility) and ``utility: same``."""
    return "(" in text or (key == "utility" and text == "same")


def resolve_groups(tree: Any, key: str | None = None) -> Any:
    """Replace group-name strings (``model: tiny``) by the dict in their file, recursively."""
    if isinstance(tree, str) and key in GROUPS and not _not_a_file(tree, key):
        return resolve_groups(load_file(find_config(tree, None, GROUPS[key])), None)
    if isinstance(tree, dict):
        # A distributional reward's `utility` is a law, not a reward file.
        laws_here = tree.get("type") == "distributional"
        return {k: v if laws_here and k in ("utility", "error") else resolve_groups(v, k) for k, v in tree.items()}
    if isinstance(tree, list):
        return [resolve_groups(v, None) for v in tree]
    return tree


# ---------------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override '{shorten(text)}' is not of the form key=value (e.g. algo.kl.coef=0.5)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", key):
        raise ConfigError(f"override '{shorten(text)}': '{shorten(key)}' is not a dotted key like algo.kl.coef")
    try:
        value = strict_yaml(raw) if raw.strip() else ""
    except ConfigError as e:  # the guards a file gets: duplicate keys, alias bombs, deep nesting
        why = re.sub(r" \(lines \d+ and \d+\)", "", str(e))  # one line: its line numbers say nothing
        raise ConfigError(f"override '{shorten(text)}': {why}") from None
    except yaml.YAMLError:
        value = raw
    return key, value


def shorten(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters for an error line (a 35 MB value is no message)."""
    return text if len(text) <= limit else f"{text[: limit - 20]}...({len(text):,} characters)"


def _is_law_slot(node: dict, part: str) -> bool:
    """Does node[part] hold a law (a distributional reward's utility/error, an error's law)?"""
    return (node.get("type") == "distributional" and part in ("utility", "error")) or (
        part == "law" and ("mode" in node or "salt" in node or isinstance(node.get("law"), (str, dict)))
    )


def set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if isinstance(nxt, str) and _is_law_slot(node, part):
            # `reward.error=student_t(df=3) reward.error.scale=0.5`: set the scale of *that* law.
            try:
                nxt = parse_law(nxt)
            except ValueError as e:
                raise ConfigError(f"override '{key}': {'.'.join(parts[: i + 1])} = {nxt!r}: {e}") from None
        elif isinstance(nxt, str) and part in GROUPS:
            nxt = resolve_groups(nxt, part)
        elif nxt == "independent" and part == "holdout":  # `eval.holdout=independent eval.holdout.k=9`
            nxt = {"source": "independent"}
        if isinstance(nxt, list) and parts[i + 1].isdigit():
            node[part] = nxt
            node = nxt  # type: ignore[assignment]
            continue
        if nxt is not None and not isinstance(nxt, dict):
            # Never silently replace a value by a fresh mapping (that would drop it).
            raise ConfigError(
                f"override '{key}': '{'.'.join(parts[: i + 1])}' is {nxt!r}, not a mapping with a '{parts[i + 1]}' key"
            )
        if nxt is None:
            nxt = {}
        node[part] = nxt
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif _is_law_slot(node, last):
        node[last] = value  # a law: its shorthand or mapping, never a reward file
    else:
        node[last] = resolve_groups(value, last)


def apply_overrides(tree: dict, overrides: list[str] | dict[str, Any]) -> dict:
    out = copy.deepcopy(tree)
    items = overrides.items() if isinstance(overrides, dict) else [parse_override(o) for o in overrides]
    # Parents before children, so `algo=bon algo.n=8` and `algo.n=8 algo=bon` mean the same.
    for key, value in sorted(items, key=lambda kv: kv[0].count(".")):
        set_dotted(out, key, value)
    return out


# ---------------------------------------------------------------------------------------------
# Validation with readable errors
# ---------------------------------------------------------------------------------------------
def _union_members(ann: Any) -> list[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for arg in typing.get_args(ann) for m in _union_members(arg)]


def _tag_of(m: type[BaseModel]) -> Any:
    for tag in ("type", "kind"):
        if tag in m.model_fields:
            return m.model_fields[tag].default
    return None


def _model_class_at(cls: type[BaseModel], raw_loc: tuple) -> type[BaseModel]:
    """The model class owning the last element of pydantic's raw `loc` (tags included), for
    did-you-mean suggestions: at a union, pydantic's next loc element is the chosen tag."""
    parts = list(raw_loc[:-1])
    i = 0
    while i < len(parts):
        part = parts[i]
        if not isinstance(part, str) or part not in cls.model_fields:
            break
        members = _union_members(cls.model_fields[part].annotation)
        if not members:
            break
        if len(members) > 1 and i + 1 < len(parts):
            by_tag = {_tag_of(m): m for m in members}
            if parts[i + 1] in by_tag:
                cls = by_tag[parts[i + 1]]
                i += 2
                continue
        cls = members[0]
        i += 1
    return cls


_TAGS = {"function-after", "function-before", "function-wrap"}


def _clean_loc(loc: tuple, root: type[BaseModel] = RunConfig) -> list[Any]:
    """Drop the union-tag elements pydantic puts in locations (``reward.synthetic.error``): the
    tags of `root`'s unions only (a probe's `length` key is no reward type)."""
    tags = _TAGS | _all_tags(root)
    return [p for p in loc if not (isinstance(p, str) and p in tags)]


def _all_tags(cls: type[BaseModel], seen: set | None = None) -> set[str]:
    seen = set() if seen is None else seen
    out: set[str] = set()
    if cls in seen:
        return out
    seen.add(cls)
    for f in cls.model_fields.values():
        members = _union_members(f.annotation)
        for m in members:
            if len(members) > 1 and isinstance(_tag_of(m), str):
                out.add(_tag_of(m))
            out |= _all_tags(m, seen)
    return out


def format_errors(err: ValidationError, data: dict, root: type[BaseModel] = RunConfig) -> str:
    lines = []
    for e in err.errors():
        loc = _clean_loc(e["loc"], root)
        key = ".".join(str(p) for p in loc) or "<root>"
        kind = e["type"]
        if kind == "extra_forbidden":
            owner = _model_class_at(root, e["loc"])
            fields = list(owner.model_fields) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
            hint = (
                f" (did you mean '{'.'.join(map(str, loc[:-1] + close))}'?)"
                if close
                else f" (expected one of: {', '.join(fields)})"
            )
            lines.append(f"unknown key '{key}'{hint}")
        elif kind == "union_tag_invalid":
            ctx = e.get("ctx", {})
            tag = ctx.get("discriminator", "type").strip("'")
            lines.append(f"{key}.{tag} = {ctx.get('tag')!r}: expected one of {ctx.get('expected_tags')}")
        elif kind == "union_tag_not_found":
            tag = e.get("ctx", {}).get("discriminator", "type").strip("'")
            lines.append(f"{key}: missing '{tag}' (which kind of {loc[-1] if loc else 'entry'} this is)")
        else:
            shown = "" if kind == "missing" or not loc else f" = {shorten(repr(e.get('input')))}"
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{key}{shown}: {msg}" if loc else msg)
    return "; ".join(dict.fromkeys(lines))


# Keys that were renamed: an old spelling is a one-line error that names the new key.
RENAMED = {
    ("algo", "beta"): "algo.kl.coef",  # tilt, rloo, grpo before one KL knob
    ("algo", "kl_coef"): "algo.kl.coef",  # bon-ft before one KL knob
}


def check_renamed(data: dict, source: str = "config") -> None:
    for (*path, key), new in RENAMED.items():
        node: Any = data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:
            old = ".".join([*path, key])
            raise ConfigError(f"{source}: '{old}' was renamed: write '{new}' (one KL coefficient for every optimizer)")


def validate(data: dict, cls: type[BaseModel] = RunConfig, source: str = "config") -> Any:
    if cls is RunConfig:
        check_renamed(data, source)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {format_errors(e, data, cls)}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """The one entry point: YAML file (or defaults) + overrides -> a validated RunConfig."""
    data = load_file(path) if path else {}
    data = apply_overrides(data, overrides or [])
    return validate(data, RunConfig, source=str(path or "config"))


def to_yaml(cfg: BaseModel) -> str:
    # libyaml's emitter where it is built in: ~10x the pure-Python one (two dumps per sweep point)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(cfg.model_dump(mode="json"), Dumper=dumper, sort_keys=False, allow_unicode=False)


def shown_yaml(cfg: BaseModel) -> str:
    """`goodhart config show`: the resolved tree, each law with only the shape parameter it reads
    (df for student_t, sigma for lognormal, alpha for pareto; none for the others). Only for
    reading: what is written into point directories keeps every field (to_yaml)."""
    data = cfg.model_dump(mode="json")
    _drop_unread_law_params(cfg, data)
    return yaml.safe_dump(data, sort_keys=False)


def _drop_unread_law_params(node: Any, data: Any) -> None:
    if isinstance(node, LawConfig):
        for param, law in LAW_PARAMS.items():
            if node.name != law:
                data.pop(param, None)
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            if isinstance(data, dict) and name in data:
                _drop_unread_law_params(getattr(node, name), data[name])
    elif isinstance(node, (list, tuple)) and isinstance(data, list):
        for n, d in zip(node, data):
            _drop_unread_law_params(n, d)
    elif isinstance(node, dict) and isinstance(data, dict):
        for k, n in node.items():
            if k in data:
                _drop_unread_law_params(n, data[k])
