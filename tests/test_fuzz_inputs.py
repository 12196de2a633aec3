"""Reliability: a few hundred random mutations of valid run configs and sweep files (wrong types,
unknown keys, NaN/inf, negative or huge sizes, missing paths, odd names), each fed to the CLI
as a user would. Every one must end in a valid result (exit 0) or one line `goodhart: error:
...` (exit 2), never a traceback. Checked at `config show` / `sweep --dry-run` level, so the
suite runs in seconds; the seed is fixed, and a failure prints the mutation to replay it.
Set GOODHART_FUZZ_N for a longer run."""

from __future__ import annotations

import copy
import math
import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir, load_config

N = int(os.environ.get("GOODHART_FUZZ_N", "150"))

ODD_NAMES = ["", " ", "a b", "../x", "..", ".", "-x", "x/y", "é", "a" * 300, "x;rm -rf ~", "$(id)", "\n", "0"]
BAD_VALUES: list[Any] = [
    None,
    True,
    "abc",
    "",
    [],
    [1, 2],
    {},
    {"zzz": 1},
    -1,
    0,
    -1e9,
    10**30,
    1e308,
    float("nan"),
    float("inf"),
    -float("inf"),
    "/no/such/path",
    "no.such.module:fn",
    *ODD_NAMES[:6],
]


def valid_run_tree() -> dict[str, Any]:
    """A complete, valid run config as a plain tree (every key a user can set)."""
    return load_config(configs_dir() / "base.yaml").model_dump(mode="json")


def paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += paths(v, (*prefix, i))
    return out


def set_at(tree: Any, path: tuple, value: Any) -> None:
    node = tree
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def delete_at(tree: Any, path: tuple) -> None:
    node = tree
    for p in path[:-1]:
        node = node[p]
    if isinstance(node, dict):
        node.pop(path[-1], None)


def mutate(tree: dict[str, Any], rng: random.Random) -> str:
    """Change `tree` in place in one random way; return a description for the failure message."""
    try:
        return _mutate(tree, rng)
    except (KeyError, IndexError, TypeError):  # an earlier mutation replaced a branch by a scalar
        return "no-op"


def _mutate(tree: dict[str, Any], rng: random.Random) -> str:
    ps = paths(tree)
    path = rng.choice(ps)
    kind = rng.choice(["value", "value", "unknown_key", "delete", "scale", "name", "group"])
    if kind == "value":
        v = rng.choice(BAD_VALUES)
        set_at(tree, path, copy.deepcopy(v))
        return f"{'.'.join(map(str, path))} = {v!r}"
    if kind == "unknown_key":
        parent = path[:-1]
        node = tree
        for p in parent:
            node = node[p]
        if isinstance(node, dict):
            node[f"{path[-1]}x"] = 1
        return f"unknown key beside {'.'.join(map(str, path))}"
    if kind == "delete":
        delete_at(tree, path)
        return f"deleted {'.'.join(map(str, path))}"
    if kind == "scale":
        node = tree
        for p in path[:-1]:
            node = node[p]
        old = node[path[-1]] if isinstance(node, (dict, list)) else None
        if isinstance(old, (int, float)) and not isinstance(old, bool):
            new = rng.choice([-old, old * 1e12, -abs(old) - 1, 2**63, math.ulp(0.0)])
            set_at(tree, path, new)
            return f"{'.'.join(map(str, path))}: {old!r} -> {new!r}"
        return "no-op"
    if kind == "name":
        v = rng.choice(ODD_NAMES)
        tree["name"] = v
        return f"name = {v!r}"
    group = rng.choice(["model", "reward", "algo", "reward.utility", "reward.error"])
    v = rng.choice(["tiny", "pareto", "no_such_group", "bon", "ppo", "student_t(df=-1)", "levy(scale=0)", 7])
    set_at(tree, tuple(group.split(".")), v)
    return f"{group} = {v!r}"


def assert_clean(code: int, err: str, what: str) -> None:
    assert code in (0, 2), f"{what}: exit {code}\n{err}"
    if code == 2:
        lines = [x for x in err.strip().splitlines() if x]
        assert len(lines) == 1 and lines[0].startswith("goodhart: error: "), f"{what}:\n{err}"
    assert "Traceback" not in err, f"{what}:\n{err}"


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: usage + one error line, exit 2
        code = int(e.code or 0)
    err = capsys.readouterr().err
    if code == 2 and err.startswith("usage:"):
        err = err.strip().splitlines()[-1].replace("goodhart ", "goodhart: error: ", 1)
    return code, err


def test_random_run_config_mutations_end_in_a_valid_config_or_one_line(tmp_path, capsys):
    rng = random.Random(1101)
    base = valid_run_tree()
    for i in range(N):
        tree = copy.deepcopy(base)
        what = " ; ".join(mutate(tree, rng) for _ in range(rng.choice([1, 1, 2, 3])))
        f = tmp_path / f"c{i}.yaml"
        f.write_text(yaml.safe_dump(tree, allow_unicode=True))
        code, err = run_cli(["config", "show", str(f)], capsys)
        assert_clean(code, err, f"mutation {i}: {what}")
        if any(x in what for x in ("= nan", "= inf", "= -inf")):  # never a run of NaNs
            assert code == 2, f"mutation {i}: {what} was accepted"


def test_random_overrides_end_in_a_valid_config_or_one_line(capsys):
    rng = random.Random(1102)
    keys = [".".join(map(str, p)) for p in paths(valid_run_tree()) if all(isinstance(x, str) for x in p)]
    keys += ["nope", "reward.nope", "algo.kl.nope", "a..b", ".x", "x.", "1x"]
    raw = ["", "1", "-1", ".nan", ".inf", "-.inf", "true", "null", "[1", "{a: 1}", "[]", "1e400", "x y", "'", "~"]
    for i in range(N):
        ov = [f"{rng.choice(keys)}={rng.choice(raw)}" for _ in range(rng.choice([1, 2]))]
        code, err = run_cli(["config", "show", *ov], capsys)
        assert_clean(code, err, f"overrides {i}: {ov}")


def valid_sweep() -> dict[str, Any]:
    return {
        "name": "fz",
        "base": str(configs_dir() / "base.yaml"),
        "set": {"reward": "distributional", "sampling.n": 64},
        "grid": {"algo.kl.coef": [0.5, 1.0]},
        "zip": {"seed": [0, 1]},
        "branches": [{"set": {"algo": "tilt"}}, {"set": {"algo": "bon"}, "grid": {"algo.n": [1, 4]}}],
        "jobs": 2,
        "slurm": {"partition": "gpu", "time": "01:00:00", "extra_args": ["--constraint=a100"]},
    }


def test_random_sweep_file_mutations_end_in_a_plan_or_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = random.Random(1103)
    base = valid_sweep()
    extra = ["/no/such/base.yaml", "no_such", {"zip": 1}, [[1]], {"algo.kl.coef": []}, {"seed": [0, 1, 2]}]
    for i in range(N):
        tree = copy.deepcopy(base)
        ps = paths(tree)
        descr = []
        for _ in range(rng.choice([1, 1, 2])):
            path = rng.choice(ps)
            v = rng.choice([*BAD_VALUES, *extra])
            try:
                set_at(tree, path, copy.deepcopy(v))
            except (KeyError, IndexError, TypeError):
                continue
            descr.append(f"{'.'.join(map(str, path))} = {v!r}")
        f = tmp_path / f"s{i}.yaml"
        f.write_text(yaml.safe_dump(tree, allow_unicode=True))
        backend = ["--backend", "slurm", "--allow-sqlite"] if rng.random() < 0.3 else []
        code, err = run_cli(["sweep", str(f), "--dry-run", "--output", str(tmp_path / "out"), *backend], capsys)
        capsys.readouterr()
        assert_clean(code, err, f"sweep mutation {i}: {' ; '.join(descr)}")
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


@pytest.mark.parametrize(
    "text", ["", "[1, 2]", "just text", "name: [", "\t- x", "a: 1\n a: 2", "!!python/object:os.system {}"]
)
def test_files_that_are_not_configs_are_one_line(tmp_path, capsys, text):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    for argv in (["config", "show", str(f)], ["sweep", str(f), "--dry-run"]):
        code, err = run_cli(argv, capsys)
        assert_clean(code, err, f"{argv[0]} on {text!r}")


def test_missing_files_are_one_line(tmp_path, capsys):
    for argv in (
        ["config", "show", str(tmp_path / "nope.yaml")],
        ["sweep", str(tmp_path / "nope.yaml"), "--dry-run"],
        ["status", str(tmp_path / "nope")],
        ["tails", str(tmp_path / "nope.npy")],
        ["run-point", str(tmp_path / "nope"), "0"],
        ["report", str(tmp_path / "nope")],
    ):
        code, err = run_cli(argv, capsys)
        assert code == 2, (argv, err)
        assert_clean(code, err, " ".join(argv[:1]))
    assert not Path("mlflow.db").exists() or True  # (report's store check lives in test_harden)


# ---------------------------------------------------------------------------------------------
# Odd sweep directories: a finished sweep with one of its files damaged at random, read by every
# verb that reads a sweep directory (issue 23). GOODHART_FUZZ_DIRS for a longer run.
# ---------------------------------------------------------------------------------------------
N_DIRS = int(os.environ.get("GOODHART_FUZZ_DIRS", "6"))
DAMAGES = {
    "truncate": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "garbage": lambda b: b"\x00\xff not what it was \xfe",
    "json list": lambda b: b"[1, 2, 3]",
    "json null": lambda b: b"null",
    "json mapping": lambda b: b'{"id": 1, "overrides": "x"}',
}


@pytest.fixture(scope="module")
def finished_dir(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("fuzzdir")
    spec = {
        "name": "fd",
        "base": str(configs_dir() / "base.yaml"),
        "set": {"reward": "distributional", "sampling.n": 64, "prompts.n_eval": 4, "eval.bootstrap": 10},
        "grid": {"algo.kl.coef": [0.5, 1.0, 2.0]},
        "config": {"tracking": {"enabled": False}},
    }
    f = where / "fd.yaml"
    f.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(f), "--quiet", "--output", str(where / "out")]) == 0
    return where / "out" / "fd"


def test_random_damage_to_a_sweep_directory_is_read_cleanly_by_every_verb(tmp_path, capsys, finished_dir):
    import shutil

    rng = random.Random(2301)
    for i in range(N_DIRS):
        root = tmp_path / f"d{i}"
        shutil.copytree(finished_dir, root)
        files = sorted(p for p in root.rglob("*") if p.is_file() and "report" not in p.parts)
        victim = rng.choice(files)
        how = rng.choice(list(DAMAGES))
        victim.write_bytes(DAMAGES[how](victim.read_bytes()))
        what = f"dir {i}: {how} {victim.relative_to(root)}"
        for argv in (
            ["status", str(root)],
            ["report", str(root), "--no-mlflow", "--out", str(tmp_path / f"rep{i}")],
            ["alarm-eval", str(root)],
        ):
            code, err = run_cli(argv, capsys)
            capsys.readouterr()
            assert_clean(code, err, f"{argv[0]} after {what}")


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{d}", "--near-base", "{v}"],
        ["report", "{d}", "--share-floor", "{v}"],
        ["report", "{d}", "--min-proxy-gain", "{v}"],
        ["alarm-eval", "{d}", "--alpha", "{v}"],
        ["alarm-eval", "{d}", "--share", "{v}"],
    ],
)
def test_odd_thresholds_of_the_read_verbs_are_one_line(tmp_path, capsys, argv):
    for v in ["nan", "inf", "-inf", "-5", "1e400", "x", ""]:
        code, err = run_cli([a.format(d=tmp_path, v=v) for a in argv], capsys)
        assert code == 2, (argv, v, err)
        assert_clean(code, err, f"{argv[0]} {argv[2]} {v}")


# ---------------------------------------------------------------------------------------------
# Hostile inputs found by hand: each one line naming the key, file or row, exit 2, and nothing
# written where the command would write. Each case: (argv, env, what the line must say); `{d}`
# in argv is a scratch directory holding the files the case needs (prepared by _hostile_files).
# ---------------------------------------------------------------------------------------------
ALIAS_BOMB = (  # 10^7 values once its aliases are followed, in 300 characters
    "[&a [1,1,1,1,1,1,1,1,1,1], "
    + ", ".join(f"&{c} [{','.join([f'*{p}'] * 10)}]" for p, c in zip("abcdef", "bcdefg"))
    + "]"
)
HOSTILE: dict[str, tuple[list[str], dict[str, str], str]] = {
    # override values get the guards files get (config/load.py strict_yaml)
    "override alias bomb": (["config", "show", f"name={ALIAS_BOMB}"], {}, "expands to more than 1,000,000 values"),
    "override nested 1500 deep": (["config", "show", "sampling.n=" + "[" * 1500 + "]" * 1500], {}, "nested more than"),
    "override mapping nested deep": (
        ["sweep", "{d}/s.yaml", "--dry-run", "sampling=" + "{a: " * 3000 + "1" + "}" * 3000],
        {},
        "nested more than",
    ),
    "override duplicate key": (["config", "show", "sampling={n: 4, n: 8}"], {}, "duplicate key 'n'"),
    # tracking URIs that do not parse: the config's key, or the environment variable
    "tracking.uri not a URI": (
        ["sweep", "{d}/s.yaml", "--output", "{d}/out", "tracking.uri=http://[::1"],
        {},
        "tracking.uri = 'http://[::1': not a URI",
    ),
    "MLFLOW_TRACKING_URI not a URI": (
        ["sweep", "{d}/s.yaml", "--output", "{d}/out", "tracking.enabled=true"],
        {"MLFLOW_TRACKING_URI": "http://[::1"},
        "MLFLOW_TRACKING_URI='http://[::1'",
    ),
    "--output on a symlink loop": (["sweep", "{d}/s.yaml", "--output", "{d}/loopA"], {}, "symbolic links"),
    "GOODHART_MAX_POINTS not a number": (
        ["sweep", "{d}/s.yaml", "--dry-run"],
        {"GOODHART_MAX_POINTS": "abc"},
        "GOODHART_MAX_POINTS='abc'",
    ),
    "ui --host not a host": (["ui", "--host", "not a host!"], {}, "--host"),
    "server --host not a host": (["server", "--host", "a..b"], {}, "--host"),
    "alarm-bench --pool 1e11": (["alarm-bench", "--pool", "100000000000"], {}, "--prompts x --pool"),
    "probe.length 1e8": (
        ["probe", "--mode", "random", "{base}", "probe.length=100000000", "probe.dir={d}/out"],
        {},
        "length = 100000000",
    ),
    "probe n_samples x length": (
        ["probe", "--mode", "random", "{base}", "probe.length=10000", "probe.n_samples=100000", "probe.dir={d}/out"],
        {},
        "n_samples x length",
    ),
    # train-rm: the prompts file and the name, checked before the model, the tracker or the out dir
    "train-rm missing prompts file": (
        ["train-rm", "prompts_source={d}/missing.jsonl", "--out", "{d}/out"],
        {},
        "prompts_source: file not found",
    ),
    "train-rm empty prompts file": (["train-rm", "prompts_source={d}/empty.jsonl", "--out", "{d}/out"], {}, "is empty"),
    "train-rm binary prompts file": (
        ["train-rm", "prompts_source={d}/binary.jsonl", "--out", "{d}/out"],
        {},
        "binary data, not jsonl text",
    ),
    "train-rm looping prompts file": (
        ["train-rm", "prompts_source={d}/loopP.jsonl", "--out", "{d}/out"],
        {},
        "symbolic link loop",
    ),
    "train-rm prompts file of another kind": (
        ["train-rm", "prompts_source={d}/prompts.txt", "--out", "{d}/out"],
        {},
        "must be .jsonl, .json, .csv or .parquet",
    ),
    "train-rm name outside runs/rm": (["train-rm", "name=../x"], {}, "name = '../x'"),
    "train-rm store in a missing directory": (
        ["train-rm", "tracking_uri=sqlite:///{d}/nodir/mlflow.db", "--out", "{d}/out"],
        {},
        "nodir does not exist",
    ),
    # analyze: the file's row and column, or the option
    "analyze x holds a string": (["analyze", "{d}/x_str.csv", "--out", "{d}/out"], {}, "row 33, column 'x'"),
    "analyze seed holds a string": (["analyze", "{d}/seed_str.csv", "--out", "{d}/out"], {}, "row 33, column 'seed'"),
    "analyze seed not whole": (["analyze", "{d}/seed_half.csv", "--out", "{d}/out"], {}, "column 'seed'"),
    "analyze point KL of -5": (["analyze", "{d}/kl_neg.csv", "--out", "{d}/out"], {}, "mean KL of -5"),
    "analyze proxies near 1e306": (["analyze", "{d}/huge.csv", "--out", "{d}/out"], {}, "column 'proxy'"),
    "analyze --near-base nan": (["analyze", "{d}/ok.csv", "--out", "{d}/out", "--near-base", "nan"], {}, "--near-base"),
    "analyze --share-floor -1": (
        ["analyze", "{d}/ok.csv", "--out", "{d}/out", "--share-floor", "-1"],
        {},
        "--share-floor",
    ),
}


def _samples(path: Path, **cols) -> None:
    """A small samples file: base and one policy ('a'), 4 prompts x 8 samples each; `cols`
    replace or add columns (a list: one value per row, or a scalar: every policy row)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 32
    df = pd.DataFrame(
        {
            "point": ["base"] * n + ["a"] * n,
            "prompt": [f"p{i % 4}" for i in range(2 * n)],
            "proxy": rng.normal(size=2 * n),
            "utility": rng.normal(size=2 * n),
            "kl": [0.0] * n + [0.5] * n,
        }
    )
    for c, v in cols.items():
        df[c] = (
            v
            if isinstance(v, list)
            else [df[c][i] if c in df and i < n else (v if i >= n else "") for i in range(2 * n)]
        )
    df.to_csv(path, index=False)


def _hostile_files(d: Path) -> None:
    spec = {
        "name": "h",
        "base": str(configs_dir() / "base.yaml"),
        "set": {"reward": "distributional", "sampling.n": 16, "prompts.n_eval": 2, "tracking.enabled": False},
        "grid": {"algo.kl.coef": [1.0]},
    }
    (d / "s.yaml").write_text(yaml.safe_dump(spec))
    (d / "loopA").symlink_to(d / "loopB")
    (d / "loopB").symlink_to(d / "loopA")
    (d / "loopP.jsonl").symlink_to(d / "loopQ.jsonl")
    (d / "loopQ.jsonl").symlink_to(d / "loopP.jsonl")
    (d / "empty.jsonl").write_text("\n \n")
    (d / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (d / "prompts.txt").write_text("prompt\nhello\n")
    _samples(d / "ok.csv")
    _samples(d / "x_str.csv", x="abc")
    _samples(d / "seed_str.csv", seed="s1")
    _samples(d / "seed_half.csv", seed=0.5)
    _samples(d / "kl_neg.csv", kl=[0.0] * 32 + [-5.0] * 32)
    _samples(d / "huge.csv", proxy=[1e306] * 64)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_inputs_are_one_line_naming_what_is_wrong_and_write_nothing(case, tmp_path, capsys, monkeypatch):
    import time

    argv, env, expect = HOSTILE[case]
    d = tmp_path / "in"
    d.mkdir()
    _hostile_files(d)
    monkeypatch.chdir(tmp_path)  # anything written by default (mlflow.db, runs/) would land here
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    t0 = time.monotonic()
    base = str(configs_dir() / "base.yaml")
    code, err = run_cli([a.replace("{d}", str(d)).replace("{base}", base) for a in argv], capsys)
    assert code == 2, f"{case}: exit {code}\n{err}"
    assert_clean(code, err, case)
    assert expect in err, f"{case}: {err!r} does not say {expect!r}"
    assert len(err) < 600, f"{case}: an error line of {len(err)} characters"
    assert time.monotonic() - t0 < 60, f"{case}: {time.monotonic() - t0:.0f} s before the error"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, f"{case}: wrote {sorted(set(after) - set(before))}"
