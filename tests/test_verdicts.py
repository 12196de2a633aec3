"""Goodhart verdict rules on hand-built sweep tables, and the report/tails commands."""

import numpy as np
import pandas as pd

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import VerdictRule, label_points, summarize_groups, sweep_verdict


def table(kl, proxy, util, half_width=0.05, law="x", algo="bon"):
    rows = []
    for k, p, u in zip(kl, proxy, util):
        rows.append(
            {
                "status": "done",
                "error_law": law,
                "algo": algo,
                "x_name": "n",
                "x": k,
                M.KL: k,
                M.GAIN_PROXY: p,
                M.lo(M.GAIN_PROXY): p - half_width,
                M.hi(M.GAIN_PROXY): p + half_width,
                M.GAIN_UTILITY: u,
                M.lo(M.GAIN_UTILITY): u - half_width,
                M.hi(M.GAIN_UTILITY): u + half_width,
            }
        )
    return pd.DataFrame(rows)


def labels(df, **rule):
    return list(label_points(df, VerdictRule(**rule))["verdict"])


def test_improving():
    df = table([0, 1, 2, 4], [0, 1, 2, 3], [0, 0.5, 0.9, 1.2])
    assert labels(df) == ["baseline", "improving", "improving", "improving"]
    assert sweep_verdict(summarize_groups(label_points(df))) == "no-catastrophe"


def test_over_optimized_past_the_peak():
    df = table([0, 1, 2, 4, 8], [0, 1, 2, 3, 4], [0, 0.5, 1.0, 0.6, 0.4])
    assert labels(df) == ["baseline", "improving", "improving", "over-optimized", "over-optimized"]


def test_catastrophic_when_utility_returns_to_base_while_proxy_climbs():
    df = table([0, 1, 2, 4, 8], [0, 2, 5, 50, 1e6], [0, 0.4, 0.2, 0.02, -0.01])
    lab = label_points(df)
    assert list(lab["verdict"]) == ["baseline", "improving", "over-optimized", "catastrophic", "catastrophic"]
    (g,) = summarize_groups(lab)
    assert g.catastrophic_kl == 4 and g.peak_kl == 1 and "CATASTROPHIC from KL 4" in g.summary
    assert sweep_verdict([g]) == "catastrophic"


def test_small_fraction_threshold_is_a_rule_parameter():
    # Utility 0.08 with a tight interval: not zero, but below 10% of the peak (1.0).
    df = table([0, 1, 4], [0, 1, 10], [0, 1.0, 0.08], half_width=0.01)
    assert labels(df) == ["baseline", "improving", "catastrophic"]
    assert labels(df, small_fraction=0.05) == ["baseline", "improving", "over-optimized"]


def test_utility_that_never_rises_is_catastrophic_everywhere_the_proxy_moved():
    df = table([0, 1, 2], [0, 3, 30], [0, 0.01, -0.02])
    assert labels(df) == ["baseline", "catastrophic", "catastrophic"]
    assert "never rose" in summarize_groups(label_points(df))[0].summary


def test_groups_are_labelled_separately():
    df = pd.concat(
        [
            table([0, 1, 4], [0, 1, 2], [0, 0.5, 1.0], law="gaussian"),
            table([0, 1, 4], [0, 5, 500], [0, 0.3, 0.0], law="pareto"),
        ]
    )
    lab = label_points(df)
    assert list(lab[lab.error_law == "gaussian"]["verdict"]) == ["baseline", "improving", "improving"]
    assert list(lab[lab.error_law == "pareto"]["verdict"]) == ["baseline", "improving", "catastrophic"]


def test_report_and_tails_commands(in_tmp, capsys):
    import yaml

    from goodhart.pipeline.cli import main
    from goodhart.pipeline.config.load import configs_dir

    spec = {
        "name": "r",
        "base": str(configs_dir() / "base.yaml"),
        "set": {
            "reward": "distributional",
            "sampling.n": 1024,
            "prompts.n_eval": 16,
            "eval.bootstrap": 100,
            "algo": "bon",
        },
        "grid": {"reward.error": ["gaussian", "levy"], "algo.n": [1, 4, 64, 1024]},
    }
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "s.yaml", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", "runs/r"]) == 0
    out = capsys.readouterr().out
    assert "levy x1 / bon" in out and "CATASTROPHIC" in out and "sweep verdict: catastrophic" in out
    assert "tails of the error levy x1 under the base policy: heavy" in out
    assert "tails of the error gaussian x1 under the base policy: light" in out
    rep = in_tmp / "runs" / "r" / "report"
    assert (rep / "gains_vs_kl.png").stat().st_size > 10_000 and (rep / "report.md").is_file()
    assert "catastrophic" in (rep / "report.md").read_text()

    import json

    from mlflow import MlflowClient

    parent = json.loads((in_tmp / "runs" / "r" / "parent.json").read_text())
    client = MlflowClient(parent["uri"])
    run = client.get_run(parent["run_id"])
    assert run.data.tags["goodhart.verdict"] == "catastrophic"
    assert {"report/gains_vs_kl.png", "report/report.md"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "report")
    }

    # Same report through the experiment name.
    assert main(["report", "r", "--no-mlflow"]) == 0
    capsys.readouterr()

    np.save(in_tmp / "x.npy", np.random.default_rng(0).pareto(1.5, 30_000))
    assert main(["tails", "x.npy"]) == 0
    assert "tail verdict: HEAVY" in capsys.readouterr().out
    pd.DataFrame({"e": np.random.default_rng(1).normal(size=30_000)}).to_csv(in_tmp / "x.csv", index=False)
    assert main(["tails", "x.csv"]) == 0
    assert "tail verdict: LIGHT" in capsys.readouterr().out
    assert main(["tails", "missing.csv"]) == 2


def test_tails_of_a_reward_under_the_base_policy(in_tmp, small_model_dir, capsys):
    from goodhart.pipeline.cli import main
    from goodhart.pipeline.config.load import configs_dir

    rc = main(
        [
            "tails",
            "--reward",
            str(configs_dir() / "base.yaml"),
            f"model.path={small_model_dir}",
            "reward=pareto",
            "prompts.n_eval=4",
            "sampling.n=200",
            "sampling.max_new_tokens=8",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "== error (proxy - utility): 800 samples" in out and "== proxy: 800 samples" in out
    assert "tail verdict:" in out
