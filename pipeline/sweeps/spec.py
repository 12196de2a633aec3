"""Sweeps: a grid of dotted overrides over a base config, expanded into points with stable ids.

Sweep file (configs/sweep/*.yaml)::

    name: demo
    base: ../base.yaml            # a run config (path relative to this file), optional
    config: {...}                 # inline run config merged over base, optional
    set: {sampling.n: 256}        # fixed overrides for every point
    grid: {reward.error.law: [gaussian, pareto]}     # cartesian product
    zip: {algo.kl.coef: [1, 2], seed: [0, 1]}          # zipped lists (equal lengths)
    branches:                     # a union of sub-grids, each crossed with grid x zip
      - {set: {algo: tilt}, grid: {algo.kl.coef: [0.1, 1, 10]}}
      - {set: {algo: bon},  grid: {algo.n: [1, 4, 16]}}
    quick: {name: demo_quick, grid: {...}}   # `goodhart sweep FILE --quick`: a smaller variant

The sweep directory (<output_dir>/<name>/) holds sweep.yaml (the file as given), points.json
(index -> id and overrides, the order SLURM array indices use), points/<id>/ per point, and
results.csv / results.parquet (one row per point, rewritten at a bounded rate as points finish,
and at the end).
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from goodhart.pipeline.config.load import apply_overrides, deep_merge, load_file, read_yaml, resolve_groups, validate
from goodhart.pipeline.config.schema import RunConfig, Strict, check_name
from goodhart.pipeline.config.slurm import SlurmConfig
from goodhart.pipeline.sweeps.point import point_id


class Branch(Strict):
    """One sub-grid of a sweep."""

    name: str | None = None
    """A name for `--branch NAME` (default: the branch's `set: {algo: ...}`)."""
    set: dict[str, Any] = Field(default_factory=dict)
    """Fixed overrides for this branch."""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    """Cartesian product of these lists."""
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    """Zipped lists (equal lengths)."""

    @model_validator(mode="after")
    def _zip_lengths(self) -> Branch:
        lens = {k: len(v) for k, v in self.zip.items()}
        if len(set(lens.values())) > 1:
            raise ValueError(f"zip lists must have equal lengths, got {lens}")
        for k, v in {**self.grid, **self.zip}.items():
            if len(v) == 0:
                raise ValueError(f"'{k}' has an empty list of values")
        return self


class SweepConfig(Branch):
    """A sweep: a base run config and the grid of overrides to expand over it."""

    name: str
    """Sweep name: the experiment name and the sweep directory's name."""

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return check_name(v)

    base: str | None = None
    """Run config file the points start from (relative to the sweep file or configs/)."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Inline run config, merged over `base`."""
    branches: list[Branch] = Field(default_factory=list)
    """A union of sub-grids, each crossed with the top-level grid and zip."""
    jobs: int = Field(1, ge=1)
    """Local worker processes (the --jobs flag overrides)."""
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)
    """SLURM settings for --backend slurm (pipeline/config/slurm.py, docs/clusters.md)."""
    quick: dict[str, Any] | None = None
    """A smaller variant, run by `goodhart sweep FILE --quick`: its keys replace the sweep's own
    (`name` -- give it its own, so it has its own directory --, `grid`, `zip`, `branches`, `jobs`),
    its `set` is merged into the sweep's, and its `branch_grid` replaces those keys' lists in every
    branch's grid that has them (fewer knobs per branch)."""


@dataclass
class Point:
    index: int
    id: str
    overrides: dict[str, Any]
    cfg: RunConfig


SAY_SO = 5_000  # points from which expanding a sweep says up front that it takes a while
MAX_POINTS = 10_000  # points one sweep may expand to (each is validated before anything runs)


def n_combos(b: Branch) -> int:
    """How many override sets `_combos(b)` gives, without building them."""
    n = 1
    for v in b.grid.values():
        n *= len(v)
    return n * (len(next(iter(b.zip.values()))) if b.zip else 1)


def max_points() -> int:
    """MAX_POINTS, or $GOODHART_MAX_POINTS when set (a whole number >= 1)."""
    from goodhart.pipeline.errors import ConfigError

    raw = os.environ.get("GOODHART_MAX_POINTS", "").strip()
    if not raw:
        return MAX_POINTS
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ConfigError(
            f"GOODHART_MAX_POINTS={raw!r}: expected a whole number of points >= 1 (default {MAX_POINTS:,})"
        )
    return limit


def _combos(b: Branch) -> list[dict[str, Any]]:
    keys = list(b.grid)
    grid = [dict(zip(keys, vals)) for vals in itertools.product(*(b.grid[k] for k in keys))] or [{}]
    n_zip = len(next(iter(b.zip.values()))) if b.zip else 0
    zipped = [{k: v[i] for k, v in b.zip.items()} for i in range(n_zip)] or [{}]
    return [{**b.set, **g, **z} for g in grid for z in zipped]


def load_sweep(
    path: str | Path, overrides: list[str] | None = None, quick: bool = False
) -> tuple[SweepConfig, dict[str, Any]]:
    """(sweep config, base run-config tree with CLI overrides applied); `quick`: the file's
    `quick:` variant (SweepConfig.quick)."""
    from goodhart.pipeline.errors import ConfigError

    path = Path(path)
    raw = read_yaml(path)
    if quick:
        q = raw.get("quick") if isinstance(raw, dict) else None
        if not isinstance(q, dict):
            raise ConfigError(f"{path} has no `quick:` variant (a mapping of the sweep keys to replace)")
        bg = q.get("branch_grid") or {}
        raw = {
            **raw,
            **{k: v for k, v in q.items() if k not in ("set", "branch_grid")},
            "set": {**(raw.get("set") or {}), **(q.get("set") or {})},
        }
        if bg:  # fewer knobs per branch
            raw["branches"] = [
                {**b, "grid": {k: bg.get(k, v) for k, v in (b.get("grid") or {}).items()}} if isinstance(b, dict) else b
                for b in raw.get("branches") or []
            ]
        raw.pop("quick")
    sweep = validate(raw, SweepConfig, source=str(path))
    tree: dict[str, Any] = {}
    if sweep.base:
        from goodhart.pipeline.config.load import find_config

        tree = load_file(find_config(sweep.base, path.parent))
    tree = deep_merge(tree, resolve_groups(sweep.config))
    return sweep, apply_overrides(tree, overrides or [])


def expand(sweep: SweepConfig, base: dict[str, Any], cli_overrides: list[str] | None = None) -> list[Point]:
    """Every point, validated before anything runs; duplicates (same id) kept once. A CLI
    override applies only to the points whose config has its key (see `expand_selected`)."""
    return expand_selected(sweep, base, cli_overrides).points


@dataclass
class Selection:
    """What `expand_selected` chose: the points to run, how many the whole sweep has, and one
    line per CLI override that some points lack the key of (it was not applied to them)."""

    points: list[Point]
    total: int
    notices: list[str]

    @property
    def partial(self) -> bool:
        return len(self.points) < self.total


def branch_label(b: Branch, i: int) -> str:
    algo = b.set.get("algo")
    return b.name or (str(algo) if isinstance(algo, str) else f"#{i}")


def _has_key(tree: dict[str, Any], key: str) -> bool:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _get(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node[part]
    return node


def _matches(p: Point, key: str, want: Any) -> bool:
    """`key=want` holds for p: its own override says so, or its resolved config has that value
    (a config group such as `algo` matches by its kind/type/name)."""
    if key in p.overrides and str(p.overrides[key]) == str(want):
        return True
    tree = p.cfg.model_dump(mode="json")
    if not _has_key(tree, key):
        return False
    got = _get(tree, key)
    if isinstance(got, dict):
        return any(str(got.get(f)) == str(want) for f in ("kind", "type", "name"))
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        try:
            return float(got) == float(want)
        except (TypeError, ValueError):
            return False
    return str(got) == str(want)


def expand_selected(
    sweep: SweepConfig,
    base: dict[str, Any],
    cli_overrides: list[str] | None = None,
    only: list[str] | None = None,
    branches: list[str] | None = None,
) -> Selection:
    """Expand the sweep, then keep the points of the named branches (`--branch NAME_OR_INDEX`,
    index 0 = the first branch in the file) whose resolved config matches every `--only key=value`.

    CLI overrides (`algo.steps=10`) apply where the point's config has the key and are skipped,
    with a notice, where it does not (tilt has no `algo.steps`); an override no point has is
    still the config error it always was."""
    from goodhart.pipeline.config.load import parse_override
    from goodhart.pipeline.errors import ConfigError

    cli = dict(parse_override(o) for o in (cli_overrides or []))
    wanted = [parse_override(o) for o in (only or [])]
    n = n_combos(sweep) * max(1, sum(n_combos(b) for b in sweep.branches))
    limit = max_points()
    if n > limit:
        raise ConfigError(
            f"sweep '{sweep.name}' expands to {n:,} points, more than the {limit:,} one sweep may have "
            "(split it into several sweeps, or set GOODHART_MAX_POINTS)"
        )
    if n > SAY_SO:  # validation takes a while: say so before the work, not after
        print(f"goodhart: note: expanding {n:,} points, each validated (about a second per thousand)", file=sys.stderr)
    top = _combos(sweep)
    chosen = _branch_indices(sweep, branches)
    combos = [(i, c) for i, b in enumerate(sweep.branches) for c in _combos(b)] or [(None, {})]
    points: list[Point] = []
    skipped: dict[str, list[str]] = {k: [] for k in cli}
    seen: set[str] = set()
    total = 0
    for t in top:
        for bi, b in combos:
            own = {**t, **b}
            cfg = validate(apply_overrides(base, own), RunConfig, source=f"{sweep.name} point {_fmt(own)}")
            ov = dict(own)
            if cli:
                resolved = cfg.model_dump(mode="json")
                for k, v in cli.items():  # CLI overrides win over the sweep's own values, where they apply
                    if _has_key(resolved, k) or "." not in k:
                        ov[k] = v
                    else:
                        skipped[k].append(_fmt(own))
                cfg = validate(apply_overrides(base, ov), RunConfig, source=f"{sweep.name} point {_fmt(ov)}")
            pid = point_id(cfg)
            if pid in seen:
                continue
            seen.add(pid)
            total += 1
            p = Point(len(points), pid, ov, cfg)
            if chosen is not None and bi not in chosen:
                continue
            if not all(_matches(p, k, v) for k, v in wanted):
                continue
            points.append(p)
    n_all = sum(1 for _ in top) * len(combos)
    for k, where in skipped.items():
        if len(where) == n_all:
            # no point has it: apply it to get the usual one-line error naming the key
            validate(apply_overrides(base, {**top[0], **combos[0][1], k: cli[k]}), RunConfig, source=f"override {k}")
    if not points:
        what = " ".join([*(only or []), *(f"--branch {b}" for b in branches or [])])
        raise ConfigError(f"no point of sweep '{sweep.name}' matches {what}")
    for i, p in enumerate(points):
        p.index = i
    notices = [
        f"{k}={cli[k]} not applied to {len(w)} point(s) without that key (e.g. {w[0]})"
        for k, w in skipped.items()
        if w and len(w) < n_all
    ]
    return Selection(points, total, notices)


def _branch_indices(sweep: SweepConfig, names: list[str] | None) -> set[int] | None:
    from goodhart.pipeline.errors import ConfigError

    if not names:
        return None
    labels = [branch_label(b, i) for i, b in enumerate(sweep.branches)]
    out: set[int] = set()
    for n in names:
        hits = {i for i, lab in enumerate(labels) if lab == n}
        if not hits and n.isdigit() and int(n) < len(labels):
            hits = {int(n)}
        if not hits:
            raise ConfigError(
                f"sweep '{sweep.name}' has no branch '{n}'; its branches: "
                + (", ".join(f"{i}={lab}" for i, lab in enumerate(labels)) or "none")
            )
        out |= hits
    return out


def _fmt(ov: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in ov.items()) or "(base)"
