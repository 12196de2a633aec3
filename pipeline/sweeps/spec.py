"""Sweeps: a grid of dotted overrides over a base config, expanded into points with stable ids.

Sweep file (configs/sweep/*.yaml)::

    name: demo
    base: ../run/demo.yaml        # a run config (path relative to this file), optional
    config: {...}                 # inline run config merged over base, optional
    set: {sampling.n: 256}        # fixed overrides for every point
    grid: {reward.error.law: [gaussian, pareto]}     # cartesian product
    zip: {algo.kl.coef: [1, 2], seed: [0, 1]}          # zipped lists (equal lengths)
    branches:                     # a union of sub-grids, each crossed with grid x zip
      - {set: {algo: tilt}, grid: {algo.kl.coef: [0.1, 1, 10]}}
      - {set: {algo: bon},  grid: {algo.n: [1, 4, 16]}}

The sweep directory (<output_dir>/<name>/) holds sweep.yaml (the file as given), points.json
(index -> id and overrides, the order SLURM array indices use), points/<id>/ per point, and
results.csv / results.parquet (one row per point, rewritten after every point).
"""

from __future__ import annotations

import itertools
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
    """SLURM settings for --backend slurm (pipeline/slurm_config.py, slurm/README.md)."""


@dataclass
class Point:
    index: int
    id: str
    overrides: dict[str, Any]
    cfg: RunConfig


def _combos(b: Branch) -> list[dict[str, Any]]:
    keys = list(b.grid)
    grid = [dict(zip(keys, vals)) for vals in itertools.product(*(b.grid[k] for k in keys))] or [{}]
    n_zip = len(next(iter(b.zip.values()))) if b.zip else 0
    zipped = [{k: v[i] for k, v in b.zip.items()} for i in range(n_zip)] or [{}]
    return [{**b.set, **g, **z} for g in grid for z in zipped]


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> tuple[SweepConfig, dict[str, Any]]:
    """(sweep config, base run-config tree with CLI overrides applied)."""
    path = Path(path)
    sweep = validate(read_yaml(path), SweepConfig, source=str(path))
    tree: dict[str, Any] = {}
    if sweep.base:
        from goodhart.pipeline.config.load import find_config

        tree = load_file(find_config(sweep.base, path.parent))
    tree = deep_merge(tree, resolve_groups(sweep.config))
    return sweep, apply_overrides(tree, overrides or [])


def expand(sweep: SweepConfig, base: dict[str, Any], cli_overrides: list[str] | None = None) -> list[Point]:
    """Every point, validated before anything runs; duplicates (same id) kept once."""
    from goodhart.pipeline.config.load import parse_override

    cli = dict(parse_override(o) for o in (cli_overrides or []))
    top = _combos(sweep)
    branches = [c for b in sweep.branches for c in _combos(b)] or [{}]
    points: list[Point] = []
    seen: set[str] = set()
    for t in top:
        for b in branches:
            ov = {**t, **b, **cli}  # CLI overrides win over the sweep's own values
            cfg = validate(apply_overrides(base, ov), RunConfig, source=f"{sweep.name} point {_fmt(ov)}")
            pid = point_id(cfg)
            if pid not in seen:
                seen.add(pid)
                points.append(Point(len(points), pid, ov, cfg))
    return points


def _fmt(ov: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in ov.items()) or "(base)"
