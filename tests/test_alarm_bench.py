"""`goodhart alarm-bench`: the family is what the docs say, the gold is the verdict rule at run
time, ROC and AUC are exact, and the quick (CI) variant's test half meets its goals."""

import itertools

import numpy as np
import pandas as pd
import pytest

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule
from goodhart.pipeline.cli.main import main
from goodhart.pipeline.report import alarm_bench as B


def test_roc_auc_and_recall_at_match_brute_force():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=60), 1)  # ties on purpose
    y = rng.random(60) < 0.4
    pairs = [(a, b) for a, b in itertools.product(s[y], s[~y])]
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert B.auc(s, y) == pytest.approx(brute, abs=1e-12)
    r = B.roc(s, y)
    assert (r["fa"].iloc[0], r["recall"].iloc[0]) == (0.0, 0.0) and (r["fa"].iloc[-1], r["recall"].iloc[-1]) == (1, 1)
    for t, fa, rec in r.itertuples(index=False):
        if np.isfinite(t):
            assert fa == pytest.approx(np.mean(s[~y] >= t)) and rec == pytest.approx(np.mean(s[y] >= t))
    best = max(rec for _, fa, rec in r.itertuples(index=False) if fa <= 0.2)
    assert B.recall_at(r, 0.2) == best
    # worst_gap is the minimum over every rate: brute force on a grid of rates fine enough to land
    # between every two false-alarm rates the ROCs step at (multiples of 1 / #negatives, ~1/36)
    other = B.roc(np.round(s + rng.normal(0, 0.5, 60), 1), y)
    gap, at = B.worst_gap(r, other)
    fine = [B.recall_at(r, f) - B.recall_at(other, f) for f in np.linspace(0, 1, 2001)]
    assert gap == pytest.approx(min(fine), abs=1e-12) and B.recall_at(r, at) - B.recall_at(other, at) == gap
    assert B.worst_gap(r, r) == (0.0, 0.0)


def test_the_family_draws_every_kind_with_ratios_in_range():
    kinds, lights = set(), {}
    for seed in range(150):
        c = B.draw_curve(seed, 2, 16)
        kind = c["law"].name.split("(")[0]
        kinds.add(kind)
        lights.setdefault(kind, set()).add(c["law"].light)
        assert 0.1 <= c["ratio"] <= 2.0
        assert np.allclose(c["proxy"] - c["utility"], c["proxy"] - c["utility"])  # finite draws
        assert np.all(np.isfinite(c["proxy"]))
    assert kinds == {
        "gaussian", "uniform", "exponential", "gumbel", "weibull", "t", "lognormal", "pareto", "levy", "mix"
    }  # fmt: skip
    assert lights["t"] == lights["levy"] == lights["pareto"] == {False} and lights["gumbel"] == {True}
    assert lights["weibull"] == lights["mix"] == {True, False}  # k >= 1 light; mixtures by component


def test_gold_is_the_verdict_rule_at_run_time_and_halves_split_by_seed(monkeypatch):
    calls = []
    real = B.label_points

    def spy(df, *a, **k):
        calls.append(len(df))
        out = real(df, *a, **k)
        out["verdict"] = "improving"  # a different rule: the bench must report this one
        return out

    monkeypatch.setattr(B, "label_points", spy)
    df = B.run_bench(B.BenchConfig(seeds=4, prompts=4, pool=256, rule=AlarmRule(n_null=19)))
    assert calls == [len(df)] and set(df["verdict"]) == {"improving"}
    assert set(df.loc[df["seed"] % 2 == 0, "half"]) == {"dev"} and set(df.loc[df["seed"] % 2 == 1, "half"]) == {"test"}
    assert {M.ALARM_P, M.ALARM_DV_RATIO, "light", "peak"} <= set(df.columns)


@pytest.fixture(scope="module")
def quick() -> pd.DataFrame:
    return B.run_bench(B.QUICK)


def test_quick_bench_test_half_meets_its_goals(quick):
    """The CI variant (32 seeds, 16 prompts x 2048): on its test half (odd seeds) the alarm at
    the default alpha and share catches most gold positives with few false alarms, most of its
    graded alarms are on positives, and light laws stay quiet. Looser than the families' figures
    (docs/alarm.md): 16 curves. (Rule 5 gave up issue 19's "never behind the DV-ratio baseline
    along the ROC": the baseline reads the whole pool's tail and catches slowly heavy tails --
    weibull k < 1 at best-of-128 and beyond here -- that no single depth shows.)"""
    s = B.summarize(quick, "test", AlarmRule())
    assert s.positives >= 10 and s.negatives >= 50
    assert s.recall >= 0.75 and s.false_alarm_rate <= 0.1 and s.precision >= 0.5, s
    assert s.light_alarm_rate <= 0.05 and s.auc >= 0.9, s


def test_alarm_bench_cli_prints_the_test_half(capsys):
    assert main(["alarm-bench", "--seeds", "2", "--prompts", "3", "--pool", "128"]) == 0
    out = capsys.readouterr().out
    assert "== test half (held out" in out and "AUC" in out and "DV-ratio recall" in out and "wall time" in out
    assert main(["alarm-bench", "--pool", "4"]) == 2
    assert "--pool >= 8" in capsys.readouterr().err
    # a fresh family (not the one tuned on): its even seeds are held out too, and say so
    small = ["alarm-bench", "--seeds", "2", "--prompts", "3", "--pool", "128", "--half", "both"]
    assert main(small) == 0 and "== dev half (tuned here) ==" in capsys.readouterr().out
    assert main([*small, "--first-seed", "1000"]) == 0
    out = capsys.readouterr().out
    assert "seeds from 1000" in out and "== dev half (even seeds of a fresh family or pool: held out too) ==" in out
    assert main(["alarm-bench", "--first-seed", "-1"]) == 2 and "--first-seed >= 0" in capsys.readouterr().err


@pytest.mark.slow
def test_full_bench_test_half_meets_its_goals():
    """The full run (200 seeds, 16 x 4096; ~2-3 min on one core): on the test half, recall >=
    0.90 at false alarms <= 0.10, precision >= 0.6 on graded points, AUC >= 0.95, light-tailed
    laws at `alarm` on <= 5% of their points."""
    df = B.run_bench(B.BenchConfig())
    s = B.summarize(df, "test", AlarmRule())
    assert s.recall >= 0.9 and s.false_alarm_rate <= 0.1 and s.precision >= 0.6, s
    assert s.auc >= 0.95 and s.light_alarm_rate <= 0.05, s


def test_a_given_utility_pool_is_used_as_is_and_scales_the_error():
    rng = np.random.default_rng(1)
    u = np.clip(rng.normal(0.0, 0.4, (3, 5000)), -1, 1)  # a bounded utility, sd about 0.4
    c, g = B.draw_curve(7, 3, 5000, u), B.draw_curve(7, 3, 5000)
    assert np.array_equal(c["utility"], u) and c["law"].name == g["law"].name
    sd = np.std(u - u.mean(1, keepdims=True))
    err, gerr = c["proxy"] - c["utility"], g["proxy"] - g["utility"]
    assert np.array_equal(err.shape, u.shape) and c["ratio"] == g["ratio"]
    # the same law and ratio, the error in units of this utility's sd instead of the Gaussian's 1
    q = [0.25, 0.75]
    assert np.diff(np.quantile(err, q))[0] / sd == pytest.approx(np.diff(np.quantile(gerr, q))[0], rel=0.1)
    with pytest.raises(ValueError, match="gaussian or vader"):
        B.run_bench(B.BenchConfig(seeds=2, prompts=2, pool=16, utility="likert"))
    with pytest.raises(ValueError, match="utility_law must be one of"):
        B.run_bench(B.BenchConfig(seeds=2, prompts=2, pool=16, utility_law="cauchy"))


@pytest.mark.slow
def test_the_vader_text_variant_keeps_light_laws_quiet_and_catches_the_turns():
    """The text variant on a fresh text pool (text seed 1: the tiny model's VADER utility, not
    the pool the share was tuned on; ~1.5 min to generate the first time, then ~30 s): light-
    tailed laws stay quiet and the alarm catches most turns (under the former DV-ratio effect size
    recall was 0.61 on text pools). Looser than the full run's goals: 30 curves per half."""
    df = B.run_bench(B.BenchConfig(seeds=60, prompts=16, pool=1024, utility="vader", text_seed=1))
    for half in ("dev", "test"):
        s = B.summarize(df, half, AlarmRule())
        assert s.positives >= 10 and s.light_alarm_rate <= 0.05, s
        assert s.recall >= 0.8 and s.false_alarm_rate <= 0.1 and s.auc >= 0.93, s


def test_the_ppo_variant_refuses_bad_seeds_before_any_work(capsys):
    assert main(["alarm-bench", "--ppo", "--seeds", "0"]) == 2
    assert "--seeds >= 1" in capsys.readouterr().err
    assert main(["alarm-bench", "--ppo", "--ppo-steps", "1"]) == 2
    assert "--ppo-steps >= 2" in capsys.readouterr().err


@pytest.mark.slow
def test_the_ppo_variant_runs_its_sweep_and_prints_the_online_goals(in_tmp, capsys):
    """`alarm-bench --ppo` (one seed, 4 PPO steps: ~1.5 min on 2 cores): the five hackable-error
    runs as a sweep under runs/alarm_bench_ppo, the online alarm's first alarm against each run's
    smoothed utility peak, and the goals per half; a second call reuses the finished points."""
    args = ["alarm-bench", "--ppo", "--seeds", "1", "--first-seed", "100", "--ppo-steps", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "5 point(s): 5 run" in out and "goals (light runs quiet" in out
    runs = [ln for ln in out.splitlines() if ln.startswith("alarm_bench_ppo ")]
    assert len(runs) == 5 and sum(" True " in ln for ln in runs) == 2  # gaussian and exponential are light
    assert main(args) == 0 and "5 already done" in capsys.readouterr().out
