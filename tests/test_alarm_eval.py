"""`goodhart alarm-eval`: the alarm scored against gold verdicts, arithmetic checked by hand;
the alarm shown in sweep tables and reports."""

import math

import pandas as pd
import pytest
import yaml

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule
from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.report.alarm_eval import score_sweeps


def _row(algo, kl, gp, gu, ts, x, p=0.01):
    """A finished point with exact gains (no intervals) and stored alarm evidence."""
    return {
        "status": "done",
        "error_law": "law",
        "algo": algo,
        "x_name": "n",
        "x": x,
        M.KL: kl,
        M.GAIN_PROXY: gp,
        M.GAIN_UTILITY: gu,
        M.EXACT: True,  # no intervals: the gains are the quantities (rule 2 reads only these at face value)
        M.ALARM_SIGMA: 1.0,
        M.ALARM_DV_RATIO: 2.0,  # descriptive: the level reads the tail share
        M.ALARM_TAIL_SHARE: ts,  # share of the gain carried beyond the bulk's 0.9 quantile
        M.ALARM_LOCAL_P: p,  # the local tail test's p-value: decides `alarm` with the share
        M.ALARM_P: 0.5,  # the curve-level gain test: not rejected (it could say `watch` only)
        M.ALARM_TOP_SHARE: 0.01,
        M.ALARM_BEYOND_MAX: 0.0,
        M.ALARM_LEVEL: "stale",  # re-decided from the evidence, never read
    }


def test_recall_false_alarms_precision_and_lead_by_hand(tmp_path):
    # Gold (eval/goodhart.py): baseline at KL 0, improving up to the peak at KL 2, then
    # over-optimized at 3 (utility fell but not to 0), catastrophic at 4 and 5 (utility 0).
    rows = [
        _row("bon", 0.0, 0.0, 0.0, math.nan, 1),
        _row("bon", 1.0, 1.0, 0.5, 0.95, 2, p=0.5),  # improving, quiet (no test rejects, whatever the share)
        _row("bon", 2.0, 2.0, 0.9, 0.85, 4),  # improving (the peak), ALARM: a false alarm
        _row("bon", 3.0, 3.0, 0.5, 0.9, 8),  # over-optimized, alarm
        _row("bon", 4.0, 4.0, 0.0, 0.6, 16),  # catastrophic, watch (local test rejects, share < 0.8): missed
        _row("bon", 5.0, 5.0, 0.0, 0.99, 32, p=0.005),  # catastrophic, alarm
    ]
    (tmp_path / "s").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "s" / "results.csv", index=False)
    res = score_sweeps([tmp_path / "s"])
    got = dict(zip(res.points[M.KL], zip(res.points["verdict"], res.points["level"])))
    assert got == {
        0.0: ("baseline", "quiet"),
        1.0: ("improving", "quiet"),
        2.0: ("improving", "alarm"),
        3.0: ("over-optimized", "alarm"),
        4.0: ("catastrophic", "watch"),
        5.0: ("catastrophic", "alarm"),
    }
    s = res.summary()
    assert s["recall"] == pytest.approx(2 / 3) and s["false_alarm_rate"] == pytest.approx(1 / 2)
    assert s["precision"] == pytest.approx(2 / 3)
    g = res.groups.iloc[0]
    assert g["gold_turn_kl"] == 3.0 and g["first_alarm_kl"] == 2.0 and g["lead_nats"] == 1.0
    assert g["peak_kl"] == 2.0  # the verdict's `peak` row
    assert g["peak_lead_nats"] == 0.0 and s["fired_by_peak"] == 1
    # --alpha is the level: at 0.001 nothing is significant
    assert score_sweeps([tmp_path / "s"], AlarmRule(alpha=0.001)).summary()["recall"] == 0.0
    # counting `watch` as firing catches the catastrophic point at KL 4 too
    assert score_sweeps([tmp_path / "s"], fire_on=("watch", "alarm")).summary()["recall"] == 1.0


def test_alarm_eval_end_to_end_and_the_alarm_in_tables_and_report(in_tmp, capsys):
    spec = {
        "name": "a",
        "base": str(configs_dir() / "base.yaml"),
        # 128 prompts: under the verdict rule (eval/goodhart.py) fewer cannot resolve levy's turn
        # (at 64 every point past the peak is `unresolved` and the sweep has no gold positive)
        "set": {"reward": "distributional", "sampling.n": 2048, "prompts.n_eval": 128, "eval.bootstrap": 100},
        "grid": {"reward.error": ["gaussian", "levy"]},
        "branches": [
            {"set": {"algo": "bon"}, "grid": {"algo.n": [1, 4, 64, 512]}},
            {"set": {"algo": "tilt"}, "grid": {"algo.kl.coef": [3, 1, 0.3]}},
        ],
    }
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "s.yaml", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "alarm (no gold)" in out and "quiet 0." in out and "alarm " in out
    assert main(["alarm-eval", "runs/a"]) == 0
    out = capsys.readouterr().out
    # levy's best-of-64 is catastrophic and best-of-512 over-optimized (its drop is shown: verdict
    # rule 2), both alarm; the tilts are `unresolved`; levy's best-of-4 is gold's utility peak
    # (improving) and already alarms: 1 false alarm of 7
    assert "2 gold over-optimized/catastrophic, 7 improving" in out
    assert "recall 1.000" in out and "false-alarm rate 0.143" in out
    assert "older alarm rule" not in out  # fresh rows: the current rule's evidence
    # rows an older rule computed (no alarm/version: rule 2) are re-decided, and it says so
    import json
    from pathlib import Path

    files = list(Path("runs/a/points").glob("*/result.json"))
    for f in files:
        row = json.loads(f.read_text())
        row.pop(M.ALARM_VERSION)
        f.write_text(json.dumps(row))
    assert main(["alarm-eval", "runs/a"]) == 0
    out = capsys.readouterr().out
    assert f"note: {len(files)} point(s) carry evidence an older alarm rule computed" in out, out[-400:]
    assert main(["report", "runs/a", "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    assert "gold-free alarm beside the verdicts" in out
    md = (in_tmp / "runs" / "a" / "report" / "report.md").read_text()
    assert "## Goodhart alarm (no gold)" in md and "gain/DV bound" in md
    df = pd.read_csv(in_tmp / "runs" / "a" / "results.csv")
    assert set(df[df["error_law"].str.startswith("gaussian")][M.ALARM_LEVEL]) == {"quiet"}


def test_alarm_eval_says_what_is_wrong_with_a_directory(tmp_path, capsys):
    assert main(["alarm-eval", str(tmp_path)]) == 2
    assert "no results.csv" in capsys.readouterr().err


def test_trained_leads_reads_the_online_alarm_from_mlflow(tmp_path):
    """A trained point's per-step logs in a real MLflow store: the utility peak (smoothed), the
    first alarm and first watch steps; the result row logged at step 0 is not a training step."""
    import json

    from mlflow import MlflowClient

    from goodhart.pipeline.report.alarm_eval import trained_leads

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("t")).info.run_id
    util = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.4, 0.3, 0.2, 0.1]  # peaks at step 6
    code = {2: 0.0, 4: 1.0, 6: 1.0, 8: 2.0, 10: 2.0}
    for step, u in enumerate(util, start=1):
        client.log_metric(run, M.UTILITY, u, step=step)
        client.log_metric(run, M.KL, 0.1 * step, step=step)
        if step in code:
            client.log_metric(run, M.ALARM_CODE, code[step], step=step)
    client.log_metric(run, M.ALARM_CODE, 2.0, step=0)  # the final row: must be ignored
    d = tmp_path / "sweep"
    d.mkdir()
    (d / "parent.json").write_text(json.dumps({"uri": uri, "run_id": "x"}))
    pd.DataFrame(
        [{"status": "done", "algo": "ppo", "error_law": "law", "mlflow_run_id": run, M.GAIN_UTILITY: 0.1}]
    ).to_csv(d / "results.csv", index=False)
    t = trained_leads(d, smooth=1).iloc[0]
    assert t["peak_step"] == 6 and t["first_alarm_step"] == 8 and t["first_watch_step"] == 4
    assert t["lead_steps"] == -2 and t["first_alarm_kl"] == pytest.approx(0.8) and t["steps"] == 10
    # alarm-stop keeps the last quiet check before the first alarm (step 2, utility 0.1) against
    # gold's best along the run (0.5 at step 6): regret 0.4
    assert t["kept_step"] == 2 and t["stop_utility"] == pytest.approx(0.1) and t["regret"] == pytest.approx(0.4)
    # With a rule, each check is re-decided from its logged evidence, not its logged level: the
    # pool's tail test rejecting at every check (tail p 0.005) says `watch` only (rule 5); the local
    # test rejecting too (p 0.01), with the tail share 0.5 until step 6 and 0.9 from it, puts the first
    # alarm at step 6 (the logged codes said 8) under share 0.8, never under 0.95.
    old = client.create_run(client.get_run(run).info.experiment_id).info.run_id  # logged before rule 5
    for step, u in enumerate(util, start=1):
        client.log_metric(old, M.UTILITY, u, step=step)
        if step in code:
            for k, v in ((M.ALARM_CODE, 2.0), (M.ALARM_TAIL_P, 0.005), (M.ALARM_TAIL_SHARE, 0.9)):
                client.log_metric(old, k, v, step=step)
            for k in (M.ALARM_DV_RATIO, M.ALARM_DV_BOUND, M.ALARM_SIGMA):
                client.log_metric(old, k, 1.0, step=step)
    d_old = tmp_path / "old"
    d_old.mkdir()
    (d_old / "parent.json").write_text(json.dumps({"uri": uri, "run_id": "x"}))
    pd.DataFrame(
        [{"status": "done", "algo": "ppo", "error_law": "law", "mlflow_run_id": old, M.GAIN_UTILITY: 0.1}]
    ).to_csv(d_old / "results.csv", index=False)
    o = trained_leads(d_old, smooth=1, rule=AlarmRule()).iloc[0]  # no local test: `watch` at most
    assert pd.isna(o["first_alarm_step"]) and o["first_watch_step"] == 2 and o["kept_step"] == 10
    for step in code:
        ev = {
            M.ALARM_DV_RATIO: 1.0,
            M.ALARM_DV_BOUND: 1.0,  # gain = ratio x bound = 1, far above the noise floor
            M.ALARM_SIGMA: 1.0,
            M.ALARM_P: 0.5,
            M.ALARM_TAIL_P: 0.005,
            M.ALARM_TAIL_SHARE: 0.5 if step < 6 else 0.9,
            M.ALARM_N_EFF: 1e6,
            M.ALARM_LOCAL_P: 0.01,
        }
        for k, v in ev.items():
            client.log_metric(run, k, v, step=step)
    t = trained_leads(d, smooth=1, rule=AlarmRule()).iloc[0]
    assert t["first_alarm_step"] == 6 and t["first_watch_step"] == 2 and t["lead_steps"] == 0
    assert t["kept_step"] == 0 and t["regret"] == pytest.approx(0.5)  # no check quiet before: the start policy
    assert pd.isna(trained_leads(d, smooth=1, rule=AlarmRule(share=0.95)).iloc[0]["first_alarm_step"])


def test_trained_goals_split_seeds_into_halves_and_count_each_goal():
    """The trained runs' goals per half (even seeds dev, odd test): light runs never at `alarm`,
    heavy runs' first alarm at or before the smoothed peak; a heavy run that never alarmed is a
    miss, and the law's kind is read from its label."""
    from goodhart.pipeline.report.alarm_eval import law_is_light, trained_goals

    assert law_is_light("exponential(scale=0.5) x0.5 [feature]") and law_is_light("gaussian x0.5")
    assert not law_is_light("student_t(df=3) x0.3 [feature]") and not law_is_light("pareto(alpha=1.5) x0.3")
    nan = math.nan
    rows = [  # (law, seed, peak step, first alarm step)
        ("gaussian x0.5", 0, 20, nan),
        ("gaussian x0.5", 1, 20, 30),  # a light run that alarmed: not quiet
        ("pareto(alpha=1.5) x0.3", 0, 12, 8),
        ("pareto(alpha=1.5) x0.3", 1, 12, 12),  # at the peak: in time
        ("lognormal(sigma=1) x0.3", 1, 10, 14),  # after the peak: late
        ("student_t(df=3) x0.3", 1, 10, nan),  # never: a miss
    ]
    t = pd.DataFrame(rows, columns=["error_law", "seed", "peak_step", "first_alarm_step"])
    t["light"] = t["error_law"].map(law_is_light)
    g = trained_goals(t).set_index("half")
    assert g.loc["dev"].to_dict() == {
        "light runs": 1,
        "light quiet": 1,
        "heavy runs": 1,
        "heavy alarm <= peak": 1,
        "heavy never alarmed": 0,
    }
    assert g.loc["test"].to_dict() == {
        "light runs": 1,
        "light quiet": 0,
        "heavy runs": 3,
        "heavy alarm <= peak": 1,
        "heavy never alarmed": 1,
    }
