"""Goodhart verdict rules on hand-built sweep tables, and the report/tails commands."""

import json

import numpy as np
import pandas as pd
import pytest

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import VerdictRule, label_points, summarize_groups, sweep_verdict


def table(kl, proxy, util, half_width=0.05, law="x", algo="bon", share0=None, ulo=None, uhi=None):
    rows = []
    hw = half_width if isinstance(half_width, list) else [half_width] * len(kl)
    for i, (k, p, u, h) in enumerate(zip(kl, proxy, util, hw)):
        rows.append(
            {
                "status": "done",
                "point_id": f"{law}-{algo}-{i}",
                "error_law": law,
                "algo": algo,
                "x_name": "n",
                "x": k,
                M.KL: k,
                M.GAIN_PROXY: p,
                M.lo(M.GAIN_PROXY): p - 0.05,
                M.hi(M.GAIN_PROXY): p + 0.05,
                M.GAIN_UTILITY: u,
                M.lo(M.GAIN_UTILITY): u - h if ulo is None else ulo[i],
                M.hi(M.GAIN_UTILITY): u + h if uhi is None else uhi[i],
                **({M.BASE_SHARE2: share0} if share0 is not None else {}),
            }
        )
    return pd.DataFrame(rows)


def labels(df, units=None, **rule):
    return list(label_points(df, VerdictRule(**rule), units)["verdict"])


def test_improving():
    df = table([0, 1, 2, 4], [0, 1, 2, 3], [0, 0.5, 0.9, 1.2], share0=0.5)
    assert labels(df) == ["baseline", "improving", "improving", "improving"]
    assert sweep_verdict(summarize_groups(label_points(df))) == "no-catastrophe"


def test_over_optimized_when_the_drop_from_the_peak_is_significant():
    df = table([0, 1, 2, 4, 8], [0, 1, 2, 3, 4], [0, 0.5, 1.0, 0.6, 0.4], share0=0.5)
    lab = label_points(df)
    assert list(lab["verdict"]) == ["baseline", "improving", "improving", "over-optimized", "over-optimized"]
    assert "paired drop from bon's own peak 1 [0.95, 1.05] at KL 2: 0.4" in lab["why"].iloc[3]
    assert "near-base margin 0.1 = 0.1 x curve peak 1" in lab["why"].iloc[3]


def test_readme_demo_ppo_pareto_is_catastrophic_only_if_utility_is_shown_near_base():
    # The README's demo numbers (PPO, 40 steps, hackable feature-mode error); share0 is
    # best-of-2's utility share on the same base pool (~0.36 pareto, ~0.5 gaussian), gain2 its
    # utility gain. The pareto share collapsed (1.5e-4, 1.4e-4) but utility 0.042 and 0.106 are
    # well above the near-base margin 0.1 x 0.2: not catastrophic, and far below what best-of-2
    # buys on the same pool: not improving either.
    def ppo(kl, proxy, util, ulo, uhi, law, share0):
        return table(kl, proxy, util, share0=share0, law=law, algo="ppo", ulo=ulo, uhi=uhi).assign(
            **{M.BASE_GAIN2: 0.2, M.lo(M.BASE_GAIN2): 0.19, M.hi(M.BASE_GAIN2): 0.21}
        )

    pareto = ppo([93.764, 104.270], [272.149, 736.015], [0.042, 0.106], [0.018, 0.079], [0.064, 0.133], "pareto", 0.36)
    gauss = ppo([0.561, 16.719], [0.470, 2.064], [0.245, 0.453], [0.196, 0.416], [0.291, 0.492], "gaussian", 0.5)
    lab = label_points(pd.concat([pareto, gauss]))
    p = lab[lab.error_law == "pareto"]
    # the first can not tell over-optimized from weaker; PPO's own curve rises from it into the
    # second (0.042 -> 0.106), which is then a weaker optimizer's point, not past its peak (rule 2)
    assert list(p["verdict"]) == ["unresolved", "improving"]
    assert "collapsed" in p["why"].iloc[0] and "best-of-2 on the base pool" in p["why"].iloc[1]
    assert "dominated" in p["flags"].iloc[1] and "rises into it" in p["why"].iloc[1]
    assert list(lab[lab.error_law == "gaussian"]["verdict"]) == ["improving", "improving"]
    # The same hack with utility shown near base (upper bounds 0.012, 0.015 < 0.02): catastrophic,
    # even at PPO's own peak, because the share collapsed there too.
    near = ppo([93.764, 104.270], [272.149, 736.015], [0.004, 0.006], [-0.004, 0.001], [0.012, 0.015], "pareto", 0.36)
    lab = label_points(near)
    assert list(lab["verdict"]) == ["catastrophic", "catastrophic"] and list(lab["peak"]) == [False, True]
    assert "utility share 1.47e-05" in lab["why"].iloc[0] and "(collapsed: < 0.05 x share0)" in lab["why"].iloc[0]


def test_catastrophic_when_utility_is_shown_near_base_past_the_peak():
    df = table([0, 1, 2, 4, 8], [0, 1, 2, 3, 4], [0, 1.0, 0.5, 0.05, 0.0], half_width=0.03)
    assert labels(df) == ["baseline", "improving", "over-optimized", "catastrophic", "catastrophic"]
    # A wider interval cannot show it near base: the upper bound 0.2 is above the margin 0.1. The
    # drop from the peak (1.0 [0.8, 1.2]) is shown, so the point is over-optimized, and says that
    # its interval still reaches the near-base band (rule 2: a shown drop is never hidden).
    df = table([0, 1, 2, 4, 8], [0, 1, 2, 3, 4], [0, 1.0, 0.5, 0.05, 0.0], half_width=[0.03, 0.03, 0.03, 0.03, 0.2])
    lab = label_points(df)
    assert lab["verdict"].iloc[-1] == "over-optimized" and "back at base not excluded" in lab["why"].iloc[-1]
    assert bool(lab["open"].iloc[-1])
    # With no drop to show either (a peak of 0.3), the same interval is unresolved, with its power.
    df = table([0, 1, 2, 4, 8], [0, 1, 2, 3, 4], [0, 0.3, 0.2, 0.05, 0.0], half_width=[0.03, 0.03, 0.03, 0.03, 0.3])
    lab = label_points(df)
    assert lab["verdict"].iloc[-1] == "unresolved" and "minimal detectable drop" in lab["why"].iloc[-1]


def test_an_interval_containing_zero_and_the_peak_is_unresolved_not_catastrophic():
    # t3 tilt beta=1 in the issue: 0.29 [-1.12, 1.99] with the peak at 1.34.
    df = table(
        [0, 1, 2, 5], [0, 1, 2, 6], [0, 1.0, 1.34, 0.29], ulo=[0, 0.9, 1.2, -1.12], uhi=[0, 1.1, 1.48, 1.99], share0=0.5
    )
    lab = label_points(df)
    assert list(lab["verdict"]) == ["baseline", "improving", "improving", "unresolved"]
    assert "cannot tell near base (< 0.134) from over-optimized" in lab["why"].iloc[3]
    assert lab["mdd"].iloc[3] == pytest.approx(lab["drop/hi"].iloc[3] - lab["drop"].iloc[3], rel=0.45)


def test_a_reward_that_never_moves_utility_on_few_prompts_is_unresolved():
    # A random reward model on 8 prompts: proxy up, utility interval wide around 0.
    df = table([0, 1, 3], [0, 2, 5], [0, 0.1, -0.2], half_width=0.5, share0=0.0)
    assert labels(df) == ["baseline", "unresolved", "unresolved"]
    # proxy up, utility maybe at base: exactly what catastrophic would be, neither shown nor excluded
    groups = summarize_groups(label_points(df))
    assert sweep_verdict(groups) == "unresolved" and groups[0].open_points == 2
    assert "not excluded either: 2 point(s) from KL 1" in groups[0].summary


def test_peak_is_the_largest_lower_bound_not_the_largest_estimate():
    # A winner's-curse point: estimate 5.08 with a huge interval (the n = N point of the issue).
    df = table(
        [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1.0, 1.2, 1.1, 5.08], half_width=[0.05, 0.05, 0.05, 0.05, 4.9], share0=0.5
    )
    lab = label_points(df)
    assert list(lab["peak"]) == [False, False, True, False, False]
    assert lab["verdict"].iloc[4] != "over-optimized"


def test_paired_comparison_sees_a_drop_that_unpaired_intervals_hide():
    from goodhart.eval.bootstrap import t_ci

    rng = np.random.default_rng(0)
    prompt_effect = rng.normal(0, 0.6, 16)  # between-prompt spread, shared by both points
    peak_u = 1.0 + prompt_effect
    late_u = 0.7 + prompt_effect + rng.normal(0, 0.05, 16)
    ci = [t_ci(u) for u in (np.zeros(16), peak_u, late_u)]
    df = table([0, 1, 2], [0, 1, 2], [c[0] for c in ci], ulo=[c[1] for c in ci], uhi=[c[2] for c in ci], share0=0.5)
    units = {
        "x-bon-0": {"gain_proxy": np.zeros(16), "gain_utility": np.zeros(16)},
        "x-bon-1": {"gain_proxy": np.ones(16), "gain_utility": peak_u},
        "x-bon-2": {"gain_proxy": 2 * np.ones(16), "gain_utility": late_u},
    }
    # Unpaired (interval widths only): no significant drop past the peak: not improving.
    lab = label_points(df)
    assert lab["verdict"].iloc[-1] == "unresolved" and "no significant drop" in lab["why"].iloc[-1]
    # Paired on prompts: the 0.3 drop is plain.
    lab = label_points(df, VerdictRule(), units)
    assert lab["verdict"].iloc[-1] == "over-optimized"
    assert lab["drop/lo"].iloc[-1] > 0.2


def test_seeds_are_one_curve_and_pool_their_units():
    a = table([0, 1, 2], [0, 1, 2], [0, 0.5, 0.9], share0=0.5).assign(seed=0)
    b = table([0, 1, 2], [0, 1.2, 2.2], [0, 0.7, 1.1], share0=0.5).assign(seed=1)
    b["point_id"] = b["point_id"] + "-s1"
    lab = label_points(pd.concat([a, b]))
    assert len(lab) == 3 and set(lab["curve"]) == {"c1"} and list(lab["n_seeds"]) == [2, 2, 2]
    assert lab[M.GAIN_UTILITY].iloc[1] == pytest.approx(0.6)
    units = {
        pid: {"gain_proxy": np.full(8, p) + np.arange(8) * 0.01, "gain_utility": np.full(8, u) + np.arange(8) * 0.01}
        for df in (a, b)
        for pid, p, u in zip(df["point_id"], df[M.GAIN_PROXY], df[M.GAIN_UTILITY])
    }
    lab = label_points(pd.concat([a, b]), VerdictRule(), units)
    # (seed, prompt) units: 16 of them, mean 0.6 + 0.035
    assert lab[M.GAIN_UTILITY].iloc[1] == pytest.approx(0.6) and lab[M.lo(M.GAIN_UTILITY)].iloc[1] < 0.6


def test_curves_are_labelled_separately():
    df = pd.concat(
        [
            table([0, 1, 4], [0, 1, 2], [0, 0.5, 1.0], law="gaussian", share0=0.5),
            table([0, 1, 4], [0, 5, 500], [0, 0.3, 0.0], half_width=0.02, law="pareto", share0=0.3),
        ]
    )
    lab = label_points(df)
    assert list(lab[lab.error_law == "gaussian"]["verdict"]) == ["baseline", "improving", "improving"]
    assert list(lab[lab.error_law == "pareto"]["verdict"]) == ["baseline", "improving", "catastrophic"]


def test_report_and_tails_commands(in_tmp, capsys):
    import yaml

    from goodhart.pipeline.cli.main import main
    from goodhart.pipeline.config.load import configs_dir

    spec = {
        "name": "r",
        "base": str(configs_dir() / "base.yaml"),
        "set": {
            "reward": "distributional",
            "sampling.n": 1024,
            # 1024 prompts: enough to show levy's best-of-64 utility near base (upper bound under
            # 10% of best-of-2's gain); with 16 the interval cannot, and the label is unresolved
            "prompts.n_eval": 1024,
            "eval.bootstrap": 100,
            "algo": "bon",
        },
        "grid": {"reward.error": ["gaussian", "levy"], "algo.n": [1, 4, 64, 256]},
    }
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "s.yaml", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", "runs/r"]) == 0
    out = capsys.readouterr().out
    assert "utility gaussian x1 | proxy gaussian x1 + levy x1" in out and "CATASTROPHIC" in out
    assert "sweep verdict: catastrophic" in out
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


def test_report_on_a_tiny_sweep_says_what_needs_more_data(in_tmp, capsys):
    """Two utility scales are two curves; a pool too small for the tail estimators is one line."""
    import yaml

    from goodhart.pipeline.cli.main import main
    from goodhart.pipeline.config.load import configs_dir

    spec = {
        "name": "tiny",
        "base": str(configs_dir() / "base.yaml"),
        "set": {
            "reward": "distributional",
            "sampling.n": 16,
            "prompts.n_eval": 4,
            "algo": "bon",
            "tracking.enabled": False,
        },
        "grid": {"reward.utility": ["gaussian(scale=0.5)", "gaussian(scale=2)"], "algo.n": [1, 4]},
    }
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "s.yaml", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", "runs/tiny", "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    assert "c1: utility gaussian x0.5 | proxy gaussian x0.5 + gaussian x1" in out
    assert "c2: utility gaussian x2 | proxy gaussian x2 + gaussian x1" in out
    md = (in_tmp / "runs" / "tiny" / "report" / "report.md").read_text()
    assert "## Not enough data for" in md and "need more base samples" in md and "Traceback" not in md
    assert "### The rule" in md

    # A sweep written before curve identities and per-prompt files: the report backfills them
    # from each point's config.yaml and the saved base pools.
    import pandas as pd

    root = in_tmp / "runs" / "tiny"
    df = pd.read_csv(root / "results.csv")
    df.drop(columns=[c for c in df if c.startswith("curve/") or c == M.BASE_SHARE2]).to_csv(
        root / "results.csv", index=False
    )
    for f in root.glob("points/*/per_prompt.npz"):
        f.unlink()
        res = f.parent / "result.json"  # ... whose results named no per-prompt file
        res.write_text(json.dumps({k: v for k, v in json.loads(res.read_text()).items() if k != "per_prompt_file"}))
    assert main(["report", "runs/tiny", "--no-mlflow"]) == 0
    assert "c2: utility gaussian x2 | proxy gaussian x2 + gaussian x1" in capsys.readouterr().out


def test_tails_of_a_reward_under_the_base_policy(in_tmp, small_model_dir, capsys):
    from goodhart.pipeline.cli.main import main
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


def test_current_names_read_results_written_before_the_kl_coefficient_rename():
    old = pd.DataFrame(
        {
            "algo": ["tilt", "ppo", "bon"],
            "x_name": ["beta", "beta", "n"],
            "tilt/beta": [0.5, np.nan, np.nan],
            "train/kl_coef": [np.nan, 0.03, np.nan],
        }
    )
    new = M.current_names(old)
    assert "tilt/beta" not in new and "train/kl_coef" not in new
    assert new[M.KL_COEF].tolist()[:2] == [0.5, 0.03] and np.isnan(new[M.KL_COEF].iloc[2])
    assert new["x_name"].tolist() == [M.X_KL_COEF, M.X_KL_COEF, "n"]
    assert M.current_names(new).equals(new)  # today's names pass through


def test_a_results_table_with_the_old_names_still_reports(in_tmp, capsys):
    """One name for the KL coefficient in outputs: kl.coef in tables (as in configs and MLflow run
    names), kl/coef as a metric. A results.csv written before (x_name beta, tilt/beta,
    train/kl_coef) still reports, under the new names."""
    import yaml

    from goodhart.pipeline.cli.main import main
    from goodhart.pipeline.config.load import configs_dir

    spec = {
        "name": "old",
        "base": str(configs_dir() / "base.yaml"),
        "set": {"reward": "distributional", "sampling.n": 16, "prompts.n_eval": 4, "algo": "tilt"},
        "grid": {"algo.kl.coef": [1.0, 0.5, 0.25]},
    }
    spec["set"]["tracking.enabled"] = False
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "s.yaml", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "kl.coef=0.5" in out and "beta" not in out
    df = pd.read_csv(in_tmp / "runs" / "old" / "results.csv")
    assert set(df["x_name"]) == {M.X_KL_COEF} and df[M.KL_COEF].tolist() == [1.0, 0.5, 0.25]
    import json

    root = in_tmp / "runs" / "old"  # rewrite the sweep as an older version wrote it
    for f in root.glob("points/*/result.json"):
        row = json.loads(f.read_text())
        row["tilt/beta"], row["x_name"] = row.pop(M.KL_COEF), "beta"
        f.write_text(json.dumps(row))
    df.rename(columns={M.KL_COEF: "tilt/beta"}).assign(x_name="beta").to_csv(root / "results.csv", index=False)
    assert main(["report", str(root), "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    import re

    # rows under the new knob name, and the summary names the peak (largest lower bound: 0.5) by it
    assert re.search(r"tilt\s+kl\.coef=0\.25\s", out) and "(tilt kl.coef=0.5)" in out
    assert "beta" not in out
