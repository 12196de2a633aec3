"""The house: imports run one way between rooms, no private name crosses a module, metric
keys live in eval/metrics.py. Read from the source (AST), so a new file cannot slip past."""

from __future__ import annotations

import ast
import re
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
        for target, names in _imports(path):
            for there in (
                names if target == "goodhart.pipeline" else [_room(target)]
            ):  # `from goodhart.pipeline import x`
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


def _charter(room: str) -> str:
    init = REPO / "pipeline" / room / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) if init.is_file() else None
    assert doc, f"pipeline/{room}/__init__.py needs a docstring"
    return doc


def _what_a_room_imports(room: str) -> set[str]:
    """Other rooms, the shared modules (errors, io) and goodhart.rewards / goodhart.eval that
    some file of `room` imports (module or function level)."""
    got = set()
    for mod, path in _modules("pipeline"):
        if _room(mod) != room:
            continue
        for target, names in _imports(path):
            if target == "goodhart.pipeline":  # `from goodhart.pipeline import optimizers`
                got.update(names)
            elif target.startswith("goodhart.pipeline."):
                got.add(_room(target))
            elif target.startswith("goodhart."):
                got.add(".".join(target.split(".")[:2]))
    return got - {room}


def test_every_room_says_what_lives_there_and_what_it_imports():
    """Each charter names every file of its room and ends with `Imports: a, b, ...`: exactly the
    rooms and packages its files import, so a charter cannot drift from the code."""
    bad = []
    for room in ROOMS:
        doc = _charter(room)
        for p in sorted((REPO / "pipeline" / room).glob("*.py")):
            if p.stem not in ("__init__", "__main__") and p.stem not in doc:
                bad.append(f"pipeline/{room}/__init__.py does not name {p.name}")
        said = doc.rsplit("Imports:", 1)
        if len(said) != 2:
            bad.append(f"pipeline/{room}/__init__.py has no `Imports:` line")
            continue
        plain = re.sub(r"\([^)]*\)", "", said[1])  # a note in parentheses says why, not what
        listed = {w.strip().rstrip(".") for w in plain.split(",")} - {""}
        actual = _what_a_room_imports(room)
        if listed != actual:
            bad.append(f"pipeline/{room}: charter says {sorted(listed)}, its files import {sorted(actual)}")
    assert not bad, "\n".join(bad)


def _import_graph() -> dict[str, set[str]]:
    """module -> the goodhart modules it imports, at module level or inside a function (both run
    sooner or later). `from pkg import name` is an edge to pkg.name when that is a module, else to pkg."""
    files = {mod: path for pkg in ("pipeline", "rewards", "eval") for mod, path in _modules(pkg)}
    files = {m.removesuffix(".__init__"): p for m, p in files.items()}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        edges = graph.setdefault(mod, set())
        for target, names in _imports(path):
            if not target.startswith("goodhart."):
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in files]
            edges.update(subs or ([target] if target in files else []))
            if subs and len(subs) < len(names) and target in files:
                edges.add(target)  # some names are modules, the rest come from the package itself
        edges.discard(mod)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_file_level_import_cycle():
    """Rooms order the imports between rooms; inside a room two files could still import each
    other (main.py <-> cluster.py did, through a function-level import). None may."""
    graph = _import_graph()
    assert "goodhart.pipeline.cli.main" in graph and graph["goodhart.pipeline.cli.main"], "the graph reads imports"
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


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


# Words that are a metric name and also something else, where a literal means the other thing:
# `kl` is also the config key `algo.kl`, the samples file's column and an f-divergence's name.
NOT_ONLY_METRICS = {"kl"}


def _metric_names() -> dict[str, str]:
    """Every name eval/metrics.py defines (and its interval columns) -> the constant's name."""
    import goodhart.eval.metrics as M

    names = {v: k for k, v in vars(M).items() if k.isupper() and isinstance(v, str)}
    names |= {M.lo(v): f"lo({k})" for v, k in list(names.items())} | {
        M.hi(v): f"hi({k})" for v, k in list(names.items())
    }
    return {v: k for v, k in names.items() if v not in NOT_ONLY_METRICS}


def _metric_literals(path: Path, names: dict[str, str], root: Path = REPO) -> list[str]:
    return [
        f"{path.relative_to(root)}:{node.lineno}: {node.value!r} (write M.{names[node.value]})"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]


def test_metric_names_are_written_only_in_eval_metrics():
    """A metric or results-table name ("ess_ok", "reward/proxy", "gain/utility/lo") spelt out
    anywhere but eval/metrics.py can drift from the one table the docs generate (docs/metrics.md):
    code says M.TILT_ESS_OK, never the string."""
    names = _metric_names()
    hits = [
        hit
        for pkg in ("pipeline", "eval", "rewards")
        for path in sorted((REPO / pkg).rglob("*.py"))
        if path != REPO / "eval" / "metrics.py"
        for hit in _metric_literals(path, names)
    ]
    assert not hits, "metric names written out of eval/metrics.py:\n" + "\n".join(hits)


def test_the_metric_name_check_finds_a_literal(tmp_path):
    f = tmp_path / "flags.py"
    f.write_text('def flags(r):\n    return r.get("ess_ok"), r["gain/utility/lo"]\n')
    hits = _metric_literals(f, _metric_names(), tmp_path)
    assert [h.split(": ", 1)[1] for h in hits] == [
        "'ess_ok' (write M.TILT_ESS_OK)",
        "'gain/utility/lo' (write M.lo(GAIN_UTILITY))",
    ]


def test_the_pipeline_docstring_names_every_room_in_import_order():
    """pipeline/__init__.py lists the rooms top to bottom as ROOMS orders them, and names every
    folder of pipeline/ (api/ included), so the map a newcomer reads first is the one enforced."""
    doc = ast.get_docstring(ast.parse((REPO / "pipeline" / "__init__.py").read_text()))
    listed = re.findall(r"^    (\w+)/ ", doc, re.M)
    assert listed == ROOMS, f"rooms in the docstring {listed} != ROOMS {ROOMS}"
    folders = sorted(p.name for p in (REPO / "pipeline").iterdir() if (p / "__init__.py").is_file())
    assert [f for f in folders if f"{f}/" not in doc] == []


def test_every_name_in_the_metric_table_is_used():
    """Every constant of eval/metrics.py (so every row of the docs' metric table, generated from
    it) is used by the code -- written or read as M.NAME, or by a name-making function of
    eval/metrics.py itself -- so the table never documents a name nothing writes."""
    import goodhart.eval.metrics as M

    source = (REPO / "eval" / "metrics.py").read_text()
    in_functions = {
        n.id
        for f in ast.parse(source).body
        if isinstance(f, ast.FunctionDef)
        for n in ast.walk(f)
        if isinstance(n, ast.Name)
    }
    code = "\n".join(
        p.read_text()
        for pkg in ("pipeline", "eval", "rewards")
        for p in (REPO / pkg).rglob("*.py")
        if p != REPO / "eval" / "metrics.py"
    )
    used = set(re.findall(r"\bM\.([A-Z][A-Z0-9_]*)\b", code))  # every module imports it as M ...
    used |= set(re.findall(r"from goodhart\.eval\.metrics import ([A-Z][A-Z0-9_]*)", code))  # ... or by name
    unused = [
        k
        for k, v in vars(M).items()
        if k.isupper() and isinstance(v, (str, tuple)) and k not in used and k not in in_functions
    ]
    assert not unused, f"names in eval/metrics.py that no code uses: {unused}"
