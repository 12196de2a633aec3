"""MkDocs hooks: what the docs show from the code is generated from the code at build time.

A page asks for generated text with a marker line ``<!-- generated: NAME -->``; ``on_page_markdown``
replaces it. An unknown NAME fails the build. The generators:

- ``rule-text``: the verdict rule exactly as ``goodhart report`` prints it
  (``goodhart.eval.goodhart.rule_text()``), so the rule is written once, in the code.
- ``metrics``: the table of metric names, read from eval/metrics.py (names, values, the comment on
  each line, the section banners), so the table is never retyped.
- ``readme-demo-table``: the demo tables the README shows (its ``<!-- results: demo ... -->`` block,
  drawn from the stored run by docs/tables.py), so the numbers live in one place.
- ``alarm-versions``, ``verdict-versions``: each version of the alarm rule (eval/alarm.py
  ``VERSIONS``) and of the verdict rule (eval/goodhart.py ``VERSIONS``) and what it changed.
- ``ppo-mutants``: the mutations tests/test_ppo_loss.py applies to the PPO step, counted and named.

``on_config`` also gives mkdocstrings a source tree it can read: the distribution installs the
folders pipeline/, rewards/ and eval/ as ``goodhart.pipeline`` ... (``[tool.setuptools] package-dir``
in pyproject.toml), a mapping griffe does not follow, so a temporary ``goodhart/`` of symlinks
built from that table is put on the handler's search path.
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import tempfile
import tokenize
import tomllib
from pathlib import Path

from mkdocs.plugins import event_priority

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.M)
_tmp: list[str] = []


# ---- the source tree mkdocstrings reads ----------------------------------------------------
def _source_tree() -> str:
    """A temp dir holding ``goodhart/<sub>`` -> the repo folder pyproject.toml maps it to."""
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    root = Path(tempfile.mkdtemp(prefix="goodhart-docs-"))
    _tmp.append(str(root))
    top = root / "goodhart"
    top.mkdir()
    if "goodhart" in mapping:  # a real top-level package: link its entries, then the subpackages
        for entry in (REPO / mapping["goodhart"]).iterdir():
            (top / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        parts = name.split(".")
        if parts[0] != "goodhart" or len(parts) != 2:
            continue
        link = top / parts[1]
        if not link.exists():
            link.symlink_to(REPO / folder, target_is_directory=True)
    return str(root)


@event_priority(100)  # before mkdocstrings reads its handler options
def on_config(config, **kwargs):
    handlers = config.plugins["mkdocstrings"].config.handlers
    python = handlers.setdefault("python", {})
    python["paths"] = [_source_tree(), *python.get("paths", [])]
    return config


def on_post_build(config, **kwargs):
    while _tmp:
        shutil.rmtree(_tmp.pop(), ignore_errors=True)


# ---- generated text ------------------------------------------------------------------------
def rule_text() -> str:
    from goodhart.eval.goodhart import rule_text as text

    return "```text\n" + text() + "\n```"


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line (without the leading #)."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _cell(text: str) -> str:
    return text.replace("``", "`").replace("|", "\\|")


def _function_doc(node: ast.FunctionDef) -> str:
    """A name-making function's docstring, or (none) what it makes of `<name>`."""
    doc = (ast.get_docstring(node) or "").replace("\n", " ")
    if doc:
        return doc
    import goodhart.eval.metrics as M

    return f"`{node.name}(name)` = `{getattr(M, node.name)('<name>')}`"


def metrics_table(path: Path = REPO / "eval" / "metrics.py") -> str:
    """Markdown tables of eval/metrics.py: one per section banner (``# ---- title ----``)."""
    source = path.read_text()
    lines = source.splitlines()
    comments = _comments(source)
    tree = ast.parse(source)
    banners = {i + 1: m.group(1) for i, line in enumerate(lines) if (m := re.match(r"^# -+ (.*?) -+\s*$", line))}
    rows: list[tuple[int, str]] = [
        (n, f"\n### {title}\n\n| name | constant | meaning |\n|---|---|---|") for n, title in banners.items()
    ]
    functions = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            functions.append(f"| `{node.name}()` | {_cell(_function_doc(node))} |")
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            continue
        name = node.targets[0].id
        if name.startswith("_"):
            continue
        said = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        n = node.end_lineno + 1  # comment-only lines right below continue the comment
        while n <= len(lines) and lines[n - 1].lstrip().startswith("#") and n not in banners:
            said.append(comments.get(n, ""))
            n += 1
        meaning = " ".join(s for s in said if s)
        rows.append((node.lineno, f"| `{node.value.value}` | `{name}` | {_cell(meaning)} |"))
    rows.sort()
    out = [text for _, text in rows]
    if functions:
        out += ["\n### Derived names\n", "| function | what it makes |", "|---|---|", *functions]
    return "\n".join(out).strip() + "\n"


def readme_demo_table() -> str:
    """The demo tables the README shows (its ``<!-- results: demo ... -->`` block): one copy."""
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- results: demo[^>]*-->\n(.*?)<!-- /results -->", text, re.S)
    if not m:
        raise ValueError("README.md has no <!-- results: demo ... --> ... <!-- /results --> block")
    return m.group(1).strip()


def _versions(module: str) -> str:
    """A rule's versions (``VERSIONS`` of the module, its ``VERSION`` the current one) as a table."""
    import importlib

    m = importlib.import_module(module)
    rows = [
        f"| {v}{' (current)' if v == m.VERSION else ''} | {_cell(text)} |" for v, text in sorted(m.VERSIONS.items())
    ]
    return "\n".join(["| version | what changed |", "|---|---|", *rows]) + "\n"


def alarm_versions() -> str:
    return _versions("goodhart.eval.alarm")


def verdict_versions() -> str:
    return _versions("goodhart.eval.goodhart")


def ppo_mutants(path: Path = REPO / "tests" / "test_ppo_loss.py") -> str:
    """The mutations tests/test_ppo_loss.py applies to the PPO step (its MUTATIONS keys), counted
    and listed, so the docs never count them by hand."""
    for node in ast.parse(path.read_text()).body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id == "MUTATIONS" and isinstance(node.value, ast.Dict):
            names = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
            return f"{len(names)} mutations: " + "; ".join(names) + "."
    raise ValueError(f"{path} has no MUTATIONS dict")


GENERATORS = {
    "rule-text": rule_text,
    "metrics": metrics_table,
    "readme-demo-table": readme_demo_table,
    "alarm-versions": alarm_versions,
    "verdict-versions": verdict_versions,
    "ppo-mutants": ppo_mutants,
}


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: unknown generated block {name!r} (known: {sorted(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(fill, markdown)
