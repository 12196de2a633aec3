"""Every pointer the prose gives exists: file paths, `goodhart.*` modules and names, config keys.

Read: README.md, docs/*.md, slurm/README.md, benchmarks/README.md; the comments of configs/*.yaml,
slurm/sweep_array.sbatch, the Makefile, pyproject.toml and mkdocs.yml; the docstrings and comments of every .py file in pipeline/,
rewards/, eval/, tests/ and benchmarks/. Checked:

- a repo path (`configs/...`, `pipeline/...`, `docs/...`, ...) names a file or folder that exists
  (`{a,b}` alternatives and `<placeholder>` parts allowed); `./` and `../` paths resolve from the
  file that names them or from a folder of configs/ (where sweep files point at run configs);
- a bare file name (`report.md`, `preemption.py`) is a file somewhere in the repository, or one the
  pipeline writes at run time (RUNTIME), or a user's own example file (USER);
- `goodhart.pipeline...`, `goodhart.rewards...`, `goodhart.eval...` name a module, and a name after
  it is defined in that module (a class's member too); in the prose and in the messages the code
  prints (string literals of pipeline/, rewards/, eval/);
- a dotted config key in backticks (`algo.kl.coef`, `probe.search.steps`) is a field of the config
  tree it belongs to (run config, train-rm config, probe config, slurm settings), NOT_KEYS aside.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import tomllib
import types
import typing
from functools import cache
from pathlib import Path

from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]
TOP = ("configs", "pipeline", "rewards", "eval", "slurm", "tests", "benchmarks", "docs", "examples")
# Import name -> folder, as the distribution installs them (pyproject.toml's package-dir).
PACKAGES = {
    name: folder
    for name, folder in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ].items()
    if name.count(".") == 1
}

# Files the pipeline writes while it runs (inside runs/, a sweep or point directory, a checkpoint,
# the MLflow store): named by the docs, never in the repository.
RUNTIME = {
    "result.json",
    "error.json",
    "points.json",
    "resolve.json",
    "running.json",
    "calibration.json",
    "parent.json",
    "slurm_jobs.json",
    "launch.env",
    "report.md",
    "report.html",
    "results.csv",
    "verdicts.csv",
    "rm_card.json",
    "per_prompt.npz",
    "train_metrics.jsonl",
    "completions.json",
    "accelerate.yaml",
    "spec.json",
    "config.yaml",
    "mlflow.db",
    "interrupted.json",
    "state.json",
    "summary.json",
    "pool.npz",
    "meta.json",
    "lock.json",
    "alarm_eval.csv",
    "alarm_eval.md",
    "steps.jsonl",
    "random.npz",
    "base.npz",
    "optimize.npz",
    "random.json",
    "base.json",
    "optimize.json",
    "config.json",
    "tokenizer.json",
    "adapter_config.json",
    "model.safetensors",
    "pareto.json",
    "gao_fits_kl.png",
    "gao_fits_sqrt_kl.png",
    "frontier.png",
    "training_curves.png",
    "gains_kl.png",
    "tails_random.png",
    "tails_base.png",
    "probe.png",
    "alarm.md",
    "learned.md",
    "card.json",
    "progress.json",
    "checkpoint.pt",
    "optimizer.pt",
    "trainer_state.json",
    "errors.npy",
    "sweep.yaml",
    "run.json",
    "preempted.json",
    "tables.txt",
    "mlruns",
    "generation_config.json",
    "tokenizer_config.json",
    "goodhart_build.json",
}
# Folders whose contents are written at run time.
RUNTIME_DIRS = ("runs/", "benchmarks/results/", "site/")
# A user's own files in examples (the docs tell them to write these).
USER = re.compile(
    r"^(my_\w*|rm7b|other|[A-Z]|rewards|eval)\.\w+$"
)  # rewards.py, eval.py: a user module that could shadow ours
# Config trees and the dotted roots that select them.
EXT = r"(?:py|md|yaml|yml|json|toml|sbatch|cfg|ini|txt|csv|npz|npy|png|html|jsonl|env|db)"


# ---------------------------------------------------------------------------------------------
# Where prose lives
# ---------------------------------------------------------------------------------------------
def _python_prose(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment of a Python file."""
    src = path.read_text()
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            out.append((tok.start[0], tok.string))
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    out.append((body[0].lineno, body[0].value.value))
        # attribute docstrings (a string right below a field)
        if isinstance(node, ast.ClassDef | ast.Module):
            for prev, cur in zip(node.body, node.body[1:]):
                if isinstance(prev, ast.AnnAssign | ast.Assign) and isinstance(cur, ast.Expr):
                    if isinstance(cur.value, ast.Constant) and isinstance(cur.value.value, str):
                        out.append((cur.lineno, cur.value.value))
    return out


def _hash_comments(path: Path) -> list[tuple[int, str]]:
    return [(i, line[line.index("#") :]) for i, line in enumerate(path.read_text().splitlines(), 1) if "#" in line]


@cache
def prose() -> list[tuple[Path, int, str, bool]]:
    """(file, line, text, is_markdown) for every piece of prose the check reads."""
    out = []
    md = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "slurm" / "README.md"]
    md += [REPO / "benchmarks" / "README.md"]
    for p in md:
        if p.is_file():
            out += [(p, i, line, True) for i, line in enumerate(p.read_text().splitlines(), 1)]
    hashed = [REPO / "slurm" / "sweep_array.sbatch", REPO / "Makefile", REPO / "pyproject.toml", REPO / "mkdocs.yml"]
    for p in [*sorted((REPO / "configs").rglob("*.yaml")), *hashed]:
        out += [(p, i, text, False) for i, text in _hash_comments(p)]
    for pkg in ("pipeline", "rewards", "eval", "tests", "benchmarks"):
        for p in sorted((REPO / pkg).rglob("*.py")):
            out += [(p, i, text, False) for i, text in _python_prose(p)]
    return out


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------
_REPO_PATH = re.compile(r"(?<![\w./~$:-])((?:" + "|".join(TOP) + r")/[\w./{},*<>-]*)")
_REL_PATH = re.compile(r"(?<![\w./~$-])(\.\.?/[\w./{},*<>-]+)")
_BARE = re.compile(r"(?<![\w./<>{}~$-])([\w-]+(?:\.[\w-]+)*\." + EXT + r")(?![\w/])")


def _expand(path: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    return [q for alt in m.group(1).split(",") for q in _expand(path[: m.start()] + alt.strip() + path[m.end() :])]


def _exists(base: Path, path: str) -> bool:
    for alt in _expand(path):
        pattern = re.sub(r"<[^<>]*>", "*", alt).rstrip("/")
        if not pattern:
            return True
        if "*" in pattern:
            if not list(base.glob(pattern)):
                return False
        elif not (base / pattern).exists():
            return False
    return True


def _clean(token: str) -> str:
    token = token.rstrip(".,:;)`'\"").rstrip(".")
    return token.rstrip(">") if token.count(">") > token.count("<") else token


def _allowed(token: str) -> bool:
    name = token.rstrip("/").rsplit("/", 1)[-1]
    return token.startswith(RUNTIME_DIRS) or name in RUNTIME or bool(USER.match(name))


@cache
def _basenames() -> frozenset[str]:
    skip = {".git", ".venv", "runs", "site", "__pycache__", ".pytest_cache", "mlruns"}
    names = set()
    for top in REPO.iterdir():
        if top.name in skip or top.name.endswith(".egg-info"):
            continue
        names.add(top.name)
        if top.is_dir():
            names |= {p.name for p in top.rglob("*") if not skip & set(p.parts)}
    return frozenset(names)


def dead_paths(path: Path, text: str) -> list[str]:
    bad = []
    for m in _REPO_PATH.finditer(text):
        token = _clean(m.group(1))
        if token.startswith(("eval/", "rewards/")) and not token.endswith(".py"):
            continue  # eval/kl, rewards/proxy/mean: MLflow and TRL metric names, not paths
        if _allowed(token):
            continue
        if "/" not in token.rstrip("/") and token.rstrip("/") in TOP:
            continue
        if not _exists(REPO, token):
            bad.append(token)
    for m in _REL_PATH.finditer(text):
        token = _clean(m.group(1))
        if _allowed(token):
            continue
        bases = [path.parent, *[d for d in (REPO / "configs").rglob("*") if d.is_dir()]]
        if not any(_exists(b, token) for b in bases):
            bad.append(token)
    for m in _BARE.finditer(text):
        name = _clean(m.group(1))
        if _allowed(name) or name in _basenames():
            continue
        if re.fullmatch(r"[\w-]+\.(?:py|md|yaml|yml|toml|sbatch|json)", name):
            bad.append(name)
    return bad


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------
_MODULE = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in PACKAGES) + r")(?:\.\w+)*")


@cache
def _defined(file: Path) -> dict[str, ast.AST]:
    tree = ast.parse(file.read_text())
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    names[t.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for a in node.names:
                names[(a.asname or a.name).split(".")[0]] = node
    return names


def _class_members(node: ast.ClassDef) -> set[str]:
    out = set()
    for n in node.body:
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(n.name)
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
            out.add(n.target.id)
        elif isinstance(n, ast.Assign):
            out |= {t.id for t in n.targets if isinstance(t, ast.Name)}
    return out


def module_resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    folder = REPO / PACKAGES[".".join(parts[:2])]
    rest = parts[2:]
    while rest and ((folder / rest[0]).is_dir() or (folder / f"{rest[0]}.py").is_file()):
        if (folder / rest[0]).is_dir():
            folder = folder / rest[0]
            rest = rest[1:]
        else:
            file = folder / f"{rest[0]}.py"
            rest = rest[1:]
            break
    else:
        file = folder / "__init__.py"
    if not rest:
        return True
    names = _defined(file)
    if rest[0] not in names:
        return False
    node = names[rest[0]]
    if len(rest) > 1 and isinstance(node, ast.ClassDef):
        return rest[1] in _class_members(node)
    return True


# ---------------------------------------------------------------------------------------------
# Config keys
# ---------------------------------------------------------------------------------------------
def _models(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (unions, Optional, Annotated, lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out = []
    for arg in typing.get_args(annotation):
        out += _models(arg)
    return out


def _open(annotation) -> bool:
    """dict[str, Any] and friends: anything below is the user's."""
    origin = typing.get_origin(annotation)
    if origin is dict:
        return True
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return any(_open(a) for a in typing.get_args(annotation))
    return False


def key_resolves(models: list[type[BaseModel]], parts: list[str]) -> bool:
    if not parts:
        return True
    for model in models:
        field = model.model_fields.get(parts[0])
        if field is None:
            continue
        if len(parts) == 1 or _open(field.annotation):
            return True
        if key_resolves(_models(field.annotation), parts[1:]):
            return True
    return False


@cache
def config_roots() -> dict[str, list[type[BaseModel]]]:
    from goodhart.pipeline.config.reward_model import RewardModelConfig
    from goodhart.pipeline.config.schema import RunConfig
    from goodhart.pipeline.config.slurm import SlurmConfig
    from goodhart.pipeline.probe.config import ProbeConfig

    roots: dict[str, list[type[BaseModel]]] = {}
    for model in (RunConfig, RewardModelConfig):
        for name in model.model_fields:
            roots.setdefault(name, []).append(model)
    roots["probe"] = [ProbeConfig]
    roots["slurm"] = [SlurmConfig]
    return roots


_KEY = re.compile(r"`([a-z_]+(?:\.[a-z_]+)+)(?:[=:][^`]*)?`")


def dead_keys(text: str) -> list[str]:
    bad = []
    roots = config_roots()
    for m in _KEY.finditer(text):
        key = m.group(1)
        parts = key.split(".")
        if parts[0] not in roots or key.endswith((".py", ".md", ".yaml", ".json", ".toml")):
            continue
        if parts[0] in ("probe", "slurm"):
            ok = key_resolves(roots[parts[0]], parts[1:])
        else:
            ok = key_resolves(roots[parts[0]], parts)
        if not ok:
            bad.append(key)
    return bad


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------
def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def test_every_named_path_exists():
    bad = [f"{_where(p, i)}: {tok}" for p, i, text, _ in prose() for tok in dead_paths(p, text)]
    assert not bad, "dead path pointers:\n" + "\n".join(bad)


def test_every_named_module_exists():
    bad = [
        f"{_where(p, i)}: {m.group(0)}"
        for p, i, text, _ in prose()
        for m in _MODULE.finditer(text)
        if not module_resolves(m.group(0).rstrip("."))
    ]
    assert not bad, "dead module pointers:\n" + "\n".join(bad)


def test_messages_name_modules_that_exist():
    """What the code prints (its string literals, f-strings included) names real modules too."""
    bad = []
    for pkg in ("pipeline", "rewards", "eval"):
        for p in sorted((REPO / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    for m in _MODULE.finditer(node.value):
                        if not module_resolves(m.group(0).rstrip(".")):
                            bad.append(f"{_where(p, node.lineno)}: {m.group(0)}")
    assert not bad, "messages naming modules that do not exist:\n" + "\n".join(bad)


# Dotted names in backticks that are not config keys, and say so.
NOT_KEYS = {
    "model.generate": "transformers' generate method",
    "reward.synthetic.error": "a raw pydantic error location, the example of what load.py cleans",
}


def test_every_named_config_key_exists():
    bad = [f"{_where(p, i)}: {k}" for p, i, text, _ in prose() for k in dead_keys(text) if k not in NOT_KEYS]
    assert not bad, "config keys that no config has:\n" + "\n".join(bad)


def test_the_checks_catch_what_they_should():
    here = REPO / "configs" / "sweep" / "demo.yaml"
    assert dead_paths(here, "see pipeline/config.py and pipeline/config/schema.py") == ["pipeline/config.py"]
    assert dead_paths(here, "base: ../run/demo.yaml, or ../base.yaml") == ["../run/demo.yaml"]
    assert dead_paths(here, "SCIENCE.md; cli.py beside report.md and my_reward.py") == ["SCIENCE.md", "cli.py"]
    assert dead_paths(here, "configs/algo/{ppo,rloo,nope}.yaml") == ["configs/algo/{ppo,rloo,nope}.yaml"]
    assert dead_paths(here, "runs/demo/points/<id> and `eval/kl`, eval/goodhart.py") == []
    assert not module_resolves("goodhart.pipeline.train.signals")
    assert module_resolves("goodhart.pipeline.train.preemption.requested")
    assert not module_resolves("goodhart.eval.min_ess")
    assert module_resolves("goodhart.eval.goodhart.VerdictRule.near_base")
    assert dead_keys("`algo.kl.coef=0.1`, `eval.min_ess`, `probe.search.steps`, `training.epochs`") == []
    assert dead_keys("`goodhart.eval.min_ess`, `algo.kl.coeff`, `eval.nope`") == ["algo.kl.coeff", "eval.nope"]
