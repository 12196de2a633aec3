"""Every example in examples/ runs (tiny variants): the per-sample file and its generator, the
external-run analysis, the reward plug-in package installed by pip and found through its entry
point. (The GRPO script with the callback runs in tests/test_integrations_trl.py.)"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_example_is_run_by_a_test():
    """Each script and each example folder (samples/, reward_plugin/) is named by a test that runs it."""
    entries = [p for p in EXAMPLES.iterdir() if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")]
    tested = Path(__file__).read_text() + (REPO / "tests" / "test_integrations_trl.py").read_text()
    assert len(entries) >= 4
    for p in entries:
        assert f'"{p.name}"' in tested or f'"{p.stem}"' in tested, f"examples/{p.name} is run by no test"


def test_the_example_samples_file_is_what_its_generator_writes(tmp_path):
    gen = _load(EXAMPLES / "samples" / "make_tiny_run.py")
    import numpy as np

    text = "\n".join(gen.rows(np.random.default_rng(0))) + "\n"
    assert text == (EXAMPLES / "samples" / "tiny_run.csv").read_text()


def test_analyze_external_run_example(tmp_path, capsys):
    ex = _load(EXAMPLES / "analyze_external_run.py")
    res = ex.main(["--out", str(tmp_path / "a")])
    out = capsys.readouterr().out
    assert "1152 samples: 5 points and 512 base samples" in out
    assert res.labelled["verdict"].iloc[-1] == "catastrophic" and "verdict: catastrophic" in out
    assert (tmp_path / "a" / "report" / "report.html").is_file()


def test_reward_plugin_entry_point_as_its_pyproject_declares_it(tmp_path, monkeypatch):
    """Fast: the package and the entry point its pyproject.toml declares, as an installed
    distribution would lay them out on sys.path; goodhart finds the reward by name."""
    import tomllib

    import numpy as np

    from goodhart.rewards.plugins import plugin_reward

    meta = tomllib.loads((EXAMPLES / "reward_plugin" / "pyproject.toml").read_text())["project"]
    eps = meta["entry-points"]["goodhart.rewards"]
    site = tmp_path / "site"
    shutil.copytree(EXAMPLES / "reward_plugin" / "goodhart_exclaim", site / "goodhart_exclaim")
    info = site / f"goodhart_exclaim-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    (info / "entry_points.txt").write_text("[goodhart.rewards]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    monkeypatch.syspath_prepend(str(site))
    r = plugin_reward("exclaim", {"weight": 2.0, "cap": 3})
    np.testing.assert_array_equal(r.score(["p"] * 3, ["no", "yes!", "wow!!!!!"]), [0.0, 2.0, 6.0])


@pytest.mark.slow
def test_reward_plugin_package_installs_and_goodhart_runs_it_by_name(small_model_dir, tmp_path):
    """pip installs examples/reward_plugin (a copy: the build leaves files beside its source);
    goodhart finds the entry point `exclaim` by name and runs one point with it."""
    src = tmp_path / "src"
    shutil.copytree(EXAMPLES / "reward_plugin", src)
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    run = [
        str(Path(sys.executable).with_name("goodhart")),
        "run",
        str(EXAMPLES / "reward_plugin" / "run.yaml"),
        "model.name=path",
        f"model.path={small_model_dir}",
        "prompts.n_eval=4",
        "sampling.n=8",
        "sampling.max_new_tokens=8",
        "eval.bootstrap=0",
        "tracking.enabled=false",
        "algo.n=4",
        f"output_dir={tmp_path / 'runs'}",
        "--quiet",
    ]
    p = subprocess.run(run, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "bon" in p.stdout and "n=4" in p.stdout
    import pandas as pd

    res = pd.read_csv(tmp_path / "runs" / "exclaim-bon" / "results.csv")
    assert res["status"].tolist() == ["done"] and "exclaim" in str(res["curve/proxy"].iloc[0])
    # without the package on the path the name is not found: a one-line reward error naming it
    from goodhart.rewards.base import RewardError
    from goodhart.rewards.plugins import plugin_reward

    with pytest.raises(RewardError, match="no reward plug-in named 'exclaim'"):
        plugin_reward("exclaim")


def _tiny_as(tmp_path: Path, layout: str) -> tuple[Path, Path]:
    """examples/samples/tiny_run.csv written the way verl / OpenRLHF dump samples (steps shifted by
    100 so that verl's step 0 is the base), and the KL table beside it."""
    import pandas as pd

    df = pd.read_csv(EXAMPLES / "samples" / "tiny_run.csv", dtype={"point": str})
    d = tmp_path / layout
    d.mkdir()
    kl = df[df["point"] != "base"].groupby("point", sort=False)["kl"].mean()
    steps = {p: str(int(p) + 100) for p in kl.index}
    for point, g in df.groupby("point", sort=False):
        step = "0" if point == "base" else steps[point]
        name = ("base" if point == "base" else step) if layout == "openrlhf" else step
        rec = pd.DataFrame({"input": g["prompt"], "output": g["completion"], "step": int(step)})
        if layout == "verl":
            rec = rec.assign(score=g["proxy"].to_numpy(), acc=g["utility"].to_numpy(), gts=None)
        else:
            rec = rec.assign(reward=g["proxy"].to_numpy(), gold_reward=g["utility"].to_numpy())
        rec.to_json(d / f"{name}.jsonl", orient="records", lines=True, double_precision=15)
    klf = tmp_path / f"kl_{layout}.csv"
    pd.DataFrame({"point": [steps[p] for p in kl.index], "kl": kl.to_numpy()}).to_csv(klf, index=False)
    return d, klf


def test_convert_dumps_of_verl_and_openrlhf_analyze_like_the_original(tmp_path):
    import goodhart

    conv = _load(EXAMPLES / "convert_dumps.py")
    want = goodhart.analyze(EXAMPLES / "samples" / "tiny_run.csv", tmp_path / "want").labelled
    for layout, proxy, gold in (("verl", "score", "acc"), ("openrlhf", "reward", "gold_reward")):
        d, klf = _tiny_as(tmp_path, layout)
        out = tmp_path / f"{layout}.csv"
        conv.main([layout, str(d), "--proxy", proxy, "--gold", gold, "--kl", str(klf), "--out", str(out)])
        got = goodhart.analyze(out, tmp_path / f"an_{layout}").labelled
        # the KL is a per-point constant here (the dumps hold none per sample): same means, same verdicts
        assert got["verdict"].tolist() == want["verdict"].tolist(), layout
        assert [float(x) - 100 for x in got["x"]] == want["x"].tolist()


def test_convert_trl_completion_logs(tmp_path):
    """TRL's log_completions files (completions/completions_<step>.parquet) and trainer_state.json."""
    import json

    import pandas as pd

    conv = _load(EXAMPLES / "convert_dumps.py")
    (tmp_path / "completions").mkdir()
    for step in (1, 2):
        pd.DataFrame(
            {
                "step": step,
                "prompt": ["a", "a", "b", "b"],
                "completion": ["x", "y", "z", "w"],
                "proxy_a": [1.0, 2.0, 3.0, 4.0],
                "proxy_b": [0.5, None, 0.5, 0.5],
                "utility": [0.1, 0.2, 0.3, 0.4],
                "advantage": 0.0,
            }
        ).to_parquet(tmp_path / "completions" / f"completions_{step:05d}.parquet")
    (tmp_path / "checkpoint-2").mkdir()
    hist = [{"step": s, "kl": 0.1 * s, "completions/mean_length": 10.0} for s in (1, 2)]
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text(json.dumps({"log_history": hist}))
    df = conv.main(
        ["trl", str(tmp_path), "--proxy", "proxy_a,proxy_b", "--gold", "utility", "--out", str(tmp_path / "s.csv")]
    )
    assert df["proxy"].tolist()[:4] == [1.5, 2.0, 3.5, 4.5]  # summed like TRL (a None reward counts 0)
    assert df["kl"].tolist() == [1.0] * 4 + [2.0] * 4 and df["point"].tolist() == ["1"] * 4 + ["2"] * 4


def test_every_path_the_integration_docs_name_exists():
    import re

    text = (REPO / "docs" / "integrations.md").read_text()
    paths = set(re.findall(r"\b((?:examples|tests|docs|eval|pipeline)/[\w./-]+\.(?:py|csv|md|toml|yaml))", text))
    assert len(paths) >= 8
    missing = [p for p in sorted(paths) if not (REPO / p).is_file()]
    assert not missing, missing


def test_alarm_base_noise_example_reads_a_sweep_of_trained_runs(tmp_path, capsys):
    """examples/alarm_base_noise.py on a hand-made sweep: a heavy pool whose run's batch is each
    prompt's top samples from the first check (alarm, before the utility peak at step 4) and a
    light pool whose run's batch is the base policy's own (never alarmed)."""
    import json

    import numpy as np
    import yaml

    from goodhart.eval.alarm import AlarmRule, BaseStats, alarm

    rule, rng = AlarmRule(), np.random.default_rng(0)
    root = tmp_path / "sweep"
    (root / "pools").mkdir(parents=True)
    for i, (law, pool) in enumerate(
        [
            ("pareto(alpha=1.5) x0.3 [feature]", rng.normal(size=(8, 512)) + 0.3 * rng.pareto(1.5, (8, 512))),
            ("gaussian x0.5 [feature]", rng.normal(size=(8, 512))),
        ]
    ):
        np.savez(root / "pools" / f"p{i}.npz", proxy=pool)
        d = root / "points" / f"pt{i}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"pool_file": f"pools/p{i}.npz", "error_law": law, "seed": 0}))
        (d / "config.yaml").write_text(yaml.safe_dump({"algo": {"kind": "ppo", "alarm_samples": 4}}))
        base, lines = BaseStats.for_rule(pool, rule), []
        for step in range(1, 9):
            row = {"step": step, "reward/utility": -abs(step - 4.0)}
            if step % 2 == 0:
                batch = (
                    np.sort(pool, 1)[:, -4:] if i == 0 else np.take_along_axis(pool, rng.integers(0, 512, (8, 4)), 1)
                )
                row.update({k: v for k, v in alarm(batch, 2.0, base, rule=rule).row().items() if isinstance(v, float)})
            lines.append(json.dumps(row))
        (d / "train_metrics.jsonl").write_text("\n".join(lines) + "\n")
    ex = _load(EXAMPLES / "alarm_base_noise.py")
    assert ex.main([str(root), "--draws", "20"]) == 0
    out = capsys.readouterr().out
    assert "with it: heavy runs in time 1 of 1; light runs alarmed 0" in out
    assert "pareto" in out and "gaussian" in out


def test_arena_reference_example(capsys):
    """examples/arena_reference.py on small pools: one row per (law, column, N), each target's
    interval, the Gaussian KL tilt at KL 1 near its closed form sqrt(1) = 1."""
    ex = _load(EXAMPLES / "arena_reference.py")
    rows = ex.main(["--log2n", "8", "10", "--samples", "32768", "--laws", "gaussian", "pareto(alpha=1.5)"])
    out = capsys.readouterr().out
    assert "argmax" in out and len(rows) == 2 * 2 * 5 * 3
    g = [r for r in rows if r["law"] == "gaussian" and r["column"] == "kl" and r["target"] == 1.0]
    assert all(r["lo"] < 1.0 < r["hi"] or abs(r["mean"] - 1.0) < 0.05 for r in g)
