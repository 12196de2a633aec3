"""The house: imports run one way between rooms, no private name crosses a module, metric
keys live in eval/metrics.py. Read from the source (AST), so a new file cannot slip past."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Rooms of goodhart.pipeline, top to bottom: a module may import its own room and rooms below.
ROOMS = ["cli", "report", "cluster", "sweeps", "probe", "optimizers", "train", "base", "config"]
SHARED = {"errors", "io"}  # beside the rooms, importable from all of them
# pipeline/api/ is not a room: pyproject.toml installs it as the package top (`import goodhart`, the
# public API) with goodhart.integrations under it. It may import everything; nothing imports it.
API = REPO / "pipeline" / "api"


def _modules(pkg: str) -> list[tuple[str, Path]]:
    folder = REPO / pkg
    return [
        (f"goodhart.{pkg}." + ".".join(p.relative_to(folder).with_suffix("").parts), p)
        for p in folder.rglob("*.py")
        if API not in p.parents
    ]


def _api_modules() -> list[tuple[str, Path]]:
    """The package top and goodhart.integrations, by their import names."""
    out = []
    for p in API.rglob("*.py"):
        parts = p.relative_to(API).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        out.append((".".join(("goodhart", *parts)), p))
    return out


def _is_api(target: str) -> bool:
    """An import of the package top's own modules (goodhart, goodhart._x, goodhart.integrations...)."""
    parts = target.split(".")
    return parts[0] == "goodhart" and (len(parts) == 1 or parts[1] not in ("pipeline", "rewards", "eval"))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["goodhart", "pipeline"] else None


def test_imports_run_down_the_rooms():
    bad = []
    for mod, path in _modules("pipeline"):
        here = _room(mod)
        if here not in ROOMS:
            continue
        for target, _ in _imports(path):
            there = _room(target)
            if there is None or there in SHARED or there == here:
                continue
            if there not in ROOMS:
                bad.append(f"{mod} imports {target}: not a room")
            elif ROOMS.index(there) < ROOMS.index(here):
                bad.append(f"{mod} ({here}) imports {target} ({there}): upward")
    assert not bad, "\n".join(bad)


def test_rewards_and_eval_never_import_each_other_or_the_pipeline():
    for pkg, banned in (
        ("rewards", ("goodhart.eval", "goodhart.pipeline")),
        ("eval", ("goodhart.rewards", "goodhart.pipeline")),
    ):
        for mod, path in _modules(pkg):
            for target, _ in _imports(path):
                assert not target.startswith(banned), f"{mod} imports {target}"


def test_no_private_name_imported_across_modules():
    bad = []
    for pkg in ("pipeline", "rewards", "eval"):
        for mod, path in _modules(pkg):
            for target, names in _imports(path):
                if target.startswith("goodhart.") and any(n.startswith("_") for n in names):
                    bad.append(f"{mod}: from {target} import {', '.join(n for n in names if n.startswith('_'))}")
    assert not bad, "\n".join(bad)


def test_every_room_says_what_lives_there():
    for room in ROOMS:
        init = REPO / "pipeline" / room / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), (
            f"pipeline/{room}/__init__.py needs a docstring"
        )


def test_nothing_imports_the_public_api_or_the_integrations():
    """pipeline, rewards and eval never import `goodhart` (the top), its private modules or
    goodhart.integrations: the public API and the integrations sit above everything."""
    bad = []
    for pkg in ("pipeline", "rewards", "eval"):
        for mod, path in _modules(pkg):
            for target, names in _imports(path):
                if _is_api(target):
                    bad.append(f"{mod} imports {target} {', '.join(names)}".rstrip())
    assert not bad, "\n".join(bad)


def test_the_api_and_integrations_import_only_the_packages():
    """The public API and goodhart.integrations stand on pipeline and eval (and rewards for
    plug-ins); goodhart.integrations is imported by nothing of the API top either."""
    mods = _api_modules()
    assert {"goodhart", "goodhart.integrations", "goodhart.integrations.trl"} <= {m for m, _ in mods}
    bad = []
    for mod, path in mods:
        for target, _ in _imports(path):
            if not mod.startswith("goodhart.integrations") and target.startswith("goodhart.integrations"):
                bad.append(f"{mod} imports {target}")
            if (
                mod.startswith("goodhart.integrations")
                and _is_api(target)
                and not target.startswith("goodhart.integrations")
            ):
                if target != "goodhart":  # the version string only
                    bad.append(f"{mod} imports the API module {target}")
    assert not bad, "\n".join(bad)
