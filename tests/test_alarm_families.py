"""`goodhart alarm-bench --family` (pipeline/report/alarm_families.py): the families differ from the
tuning family as docs/alarm.md says, test families never share a seed with a dev one, the
alarm does not depend on the rewards' unit, and the figures a family reports (alarm-stop regret,
heavy-law false alarms, the blind spot, the headline) are what they say on hand-made points."""

import math

import numpy as np
import pandas as pd
import pytest

from goodhart.eval import metrics as M
from goodhart.eval.alarm import AlarmRule
from goodhart.pipeline.cli.main import main
from goodhart.pipeline.report import alarm_bench as B
from goodhart.pipeline.report import alarm_families as F


def test_families_differ_from_the_tuning_family_as_documented():
    fams = F.FAMILIES
    tune = fams["tune"].cfg
    for seed in range(5):  # the tuning family's draws are the bench's as they always were
        a, b = B.draw_curve(seed, 2, 64), B.draw_curve(seed, 2, 64, cfg=tune)
        assert np.array_equal(a["proxy"], b["proxy"]) and a["utility_law"] == "gaussian"
    # seeds: test families share none with a dev family or with each other
    spans = {f.name: set(range(f.cfg.first_seed, f.cfg.first_seed + f.cfg.seeds)) for f in fams.values()}
    text = {n for n, f in fams.items() if f.cfg.utility == "vader"}
    tests = [n for n, f in fams.items() if f.role == "test"]
    for n in tests:
        others = [m for m in fams if m != n and not ({n, m} <= text and fams[m].cfg.text_seed != fams[n].cfg.text_seed)]
        assert all(not spans[n] & spans[m] for m in others if fams[m].cfg.utility == fams[n].cfg.utility), n
    assert {f.role for f in fams.values()} == {"dev", "test"} and all(f.differs for f in fams.values())
    # the blind-spot family: light errors only, heavy utilities
    heavy = fams["heavy-utility"].cfg
    kinds = set()
    for seed in range(60):
        c = B.draw_curve(seed, 2, 64, cfg=heavy)
        assert c["law"].light and not c["utility_light"]
        kinds.add(c["utility_law"].split("(")[0])
    assert kinds == {"t", "lognormal", "pareto"}
    # bounded utilities stay in a fixed range around their prompt's mean
    bounded = fams["bounded-utility"].cfg
    names = set()
    for seed in range(20):
        c = B.draw_curve(seed, 3, 2000, cfg=bounded)
        names.add(c["utility_law"])
        spread = c["utility"] - c["utility"].mean(1, keepdims=True)
        assert np.ptp(spread, axis=1).max() < 5.62  # support widths in robust units: uniform 2.70, beta(2,5) 5.61
    assert names == {"uniform", "beta(2,5)"}
    # scale: ratios in range, rewards in the family's unit
    sc = fams["scale"].cfg
    for seed in range(20):
        c = B.draw_curve(seed, 2, 64, cfg=sc)
        assert 0.3 <= c["ratio"] <= 6.0
        base = B.draw_curve(seed, 2, 64, cfg=B.BenchConfig(ratio=sc.ratio, prompt_sd=sc.prompt_sd))
        assert np.allclose(c["proxy"], 50.0 * base["proxy"])


def test_the_repeated_rewards_family_repeats_a_texts_utility_and_error():
    cfg = F.FAMILIES["repeated-rewards"].cfg
    c = B.draw_curve(6300, 4, 4096, cfg=cfg)
    share = np.mean([np.unique(row).size / row.size for row in c["proxy"]])
    assert 0.6 < share < 0.66  # 1 - 1/e distinct, drawing N from N with replacement
    for u, x in zip(c["utility"], c["proxy"]):
        _, first = np.unique(x, return_index=True)
        assert np.unique(u).size == first.size  # a repeated proxy is a repeated text: its utility repeats too


def test_the_alarm_does_not_depend_on_the_rewards_unit():
    """Every figure the alarm decides on is scale-free: the same curve in units of 50 reads the
    same levels and the same local test (the `scale` family relies on it)."""
    rule = AlarmRule(n_null=49)
    one = B.draw_curve(3, 8, 1024)
    fifty = B.draw_curve(3, 8, 1024, cfg=B.BenchConfig(unit=50.0))
    r1, _ = B.curve_points(one, rule)
    r50, _ = B.curve_points(fifty, rule)
    assert [r[M.ALARM_LEVEL] for r in r1] == [r[M.ALARM_LEVEL] for r in r50]
    for a, b in zip(r1, r50):
        for k in (M.ALARM_LOCAL_P, M.ALARM_TAIL_SHARE, M.ALARM_P):
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-12) or (math.isnan(a[k]) and math.isnan(b[k])), k


def _points(rows):
    """Hand-made bench points: (curve, algo, kl, utility gain, verdict, level, light, utility_light)."""
    out = []
    for curve, algo, kl, u, verdict, level, light, ulight in rows:
        out.append(
            {
                "error_law": curve,
                "algo": algo,
                M.KL: kl,
                M.GAIN_UTILITY: u,
                "verdict": verdict,
                "light": light,
                "utility_light": ulight,
                "seed": hash(curve) % 1000,
                M.ALARM_LEVEL: level,
            }
        )
    return pd.DataFrame(out)


def test_alarm_stop_is_the_last_point_before_the_first_alarm_against_golds_best():
    df = _points(
        [
            ("h", "bon", 0.2, 0.5, "improving", "quiet", False, True),
            ("h", "bon", 1.2, 0.9, "improving", "watch", False, True),
            ("h", "bon", 2.5, 1.0, "improving", "alarm", False, True),  # first alarm: stop at KL 1.2
            ("h", "bon", 3.2, 0.4, "over-optimized", "alarm", False, True),
            ("first", "bon", 0.2, 0.3, "improving", "alarm", False, True),  # alarms at once: the base
            ("light", "bon", 0.2, 0.3, "improving", "quiet", True, True),
            ("light", "bon", 1.2, 0.6, "improving", "quiet", True, True),  # never alarms: the last point
        ]
    )
    s = F.alarm_stops(df, (df[M.ALARM_LEVEL] == "alarm").to_numpy()).set_index("curve")
    assert s.loc["h", "stop_utility"] == 0.9 and s.loc["h", "best_utility"] == 1.0
    assert s.loc["h", "regret"] == pytest.approx(0.1) and s.loc["h", "rel_regret"] == pytest.approx(0.1)
    assert s.loc["first", "stop_utility"] == 0.0 and s.loc["first", "regret"] == pytest.approx(0.3)
    assert not s.loc["light", "stopped"] and s.loc["light", "regret"] == 0.0


def test_a_family_row_counts_heavy_law_negatives_and_the_blind_spot_apart(monkeypatch):
    df = _points(
        [
            ("h1", "bon", 0.2, 0.5, "improving", "alarm", False, True),  # heavy-law negative at alarm
            ("h1", "bon", 1.2, 0.2, "over-optimized", "alarm", False, True),  # caught
            ("h1", "bon", 2.0, 0.1, "over-optimized", "watch", False, True),  # missed
            ("h2", "bon", 0.2, 0.5, "improving", "quiet", False, True),
            ("l1", "bon", 0.2, 0.5, "improving", "quiet", True, True),
            ("l1", "bon", 1.2, 0.9, "unresolved", "alarm", True, True),
            ("b1", "bon", 0.2, 0.5, "improving", "alarm", True, False),  # light error, heavy utility
            ("b1", "bon", 1.2, 0.9, "improving", "quiet", True, False),
        ]
    )
    monkeypatch.setattr(F, "levels", lambda d, rule: (d[M.ALARM_LEVEL], d[M.ALARM_LEVEL]))
    row = F.family_row(df, AlarmRule(), F.FAMILIES["heavy-utility"])
    assert (row["positives"], row["negatives"], row["heavy-law negatives"], row["unresolved"]) == (2, 5, 2, 1)
    assert row["recall"] == 0.5 and row["FA heavy-law"] == 0.5 and row["blind spot FA"] == 0.5
    assert row["false alarms"] == pytest.approx(1 / 3)  # the blind spot's negatives apart
    assert row["precision"] == pytest.approx(1 / 3)  # graded points at alarm: h1 x2 (1 positive), b1
    assert row["light laws at alarm"] == 0.5 and row["unresolved at alarm"] == 1.0
    # alarm-stop on h1: its first point alarms, so it keeps the base (regret = the best gain, 0.5)
    assert row["heavy curves stopped"] == "1/2" and row["stop regret bon|tilt"] == "1.00|-"
    lines = F.headline([row | {"role": "test"}])
    assert lines[0].startswith("worst family's recall: 0.500") and "heavy-law negatives: 0.500" in lines[1]
    assert any(line.startswith("blind spot (heavy-utility): alarm on 0.500") for line in lines)


def test_the_family_verb_runs_named_families_and_refuses_unknown_ones(capsys):
    assert main(["alarm-bench", "--family", "small-pool", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "small-pool (dev): 32 prompts x 512" in out and "FA heavy-law" in out and "a look at part" in out
    assert main(["alarm-bench", "--family", "nope"]) == 2
    assert "unknown family nope" in capsys.readouterr().err
    assert [f.name for f in F.pick("test")] == [f.name for f in F.FAMILIES.values() if f.role == "test"]
