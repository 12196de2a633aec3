"""The arena's report (pipeline/report/arena.py): alarm-stop at `alarm`, a verdict's stability over
seeds and pool sizes, and a cut-down configs/sweep/arena.yaml end to end through `goodhart sweep`
and `goodhart report` -- every column at the same KL targets, its grid's end the argmax, and no
verdict moved by extending the grid past it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from goodhart.eval import metrics as M
from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.report.arena import (
    BASE,
    HOLDOUT_GAIN,
    agreement,
    alarm_knob,
    alarm_stop,
    cell_row,
    holdout_stop,
    stop_cell,
)


def _curve(levels, utility, kl=None):
    n = len(levels)
    return pd.DataFrame(
        {
            "point_id": [f"p{i}" for i in range(n)],
            M.KL: kl or [0.1 * (i + 1) for i in range(n)],
            M.ALARM_LEVEL: levels,
            M.GAIN_UTILITY: utility,
            M.GAIN_PROXY: [1.0 * (i + 1) for i in range(n)],
            "verdict": ["improving"] * n,
        }
    )


def test_alarm_stop_stops_at_alarm_not_at_watch():
    """The last point before the first `alarm`; a `watch` is not a stop. Its regret is against the
    best utility on the same curve, its verdict the label of the point it stops at."""
    c = _curve(["quiet", "watch", "quiet", "alarm", "quiet"], [0.1, 0.2, 0.3, 0.9, 0.5])
    assert alarm_knob(c) == 2
    s = alarm_stop(c)
    assert s["utility"] == 0.3 and s["kl"] == pytest.approx(0.3) and s["regret"] == pytest.approx(0.6)
    assert alarm_knob(_curve(["quiet", "watch", "watch"], [0.1, 0.2, 0.3])) == 2
    base = alarm_stop(_curve(["alarm", "quiet"], [0.4, 0.2]))
    assert base["verdict"] == BASE and base["utility"] == 0.0 and base["regret"] == pytest.approx(0.4)


def test_holdout_stop_at_the_held_out_estimates_peak():
    """The held-out gain's largest lower bound picks the stop (not its largest estimate); no lower
    bound above 0: the base policy. Its regret is against gold's best on the same curve."""
    c = _curve(["quiet"] * 4, [0.1, 0.5, 0.9, 0.2])
    c[HOLDOUT_GAIN] = [0.1, 0.6, 1.4, 0.3]
    c[M.lo(HOLDOUT_GAIN)] = [0.05, 0.4, -0.2, 0.1]
    s = holdout_stop(c)
    assert s["point_id"] == "p1" and s["utility"] == 0.5 and s["regret"] == pytest.approx(0.4)
    c[M.lo(HOLDOUT_GAIN)] = [-0.1, -0.1, -0.2, -0.3]
    assert holdout_stop(c)["verdict"] == BASE
    seeds = {i: {"hstop": holdout_stop(c), "verdict": "improving"} for i in range(3)}
    cell = stop_cell(seeds, 0.95, "hstop")
    assert cell["verdict"] == BASE and cell["agree"] == 3 and cell["stop_regret"] == pytest.approx(0.9)


def _seeds(verdicts, best=1.0):
    return {i: {"verdict": v, "best_utility": best, "best_kl": 1.0, "targets": {}} for i, v in enumerate(verdicts)}


def _trend(end, best):
    """(dU, lo, hi) at the grid's end and at the best."""
    return [
        {"target": 30.0, "dU": end[0], "dU/lo": end[1], "dU/hi": end[2]},
        {"target": float("nan"), "best": True, "dU": best[0], "dU/lo": best[1], "dU/hi": best[2]},
    ]


def test_a_disagreement_needs_the_seeds_and_the_trend_in_n():
    """Predicted catastrophic: `!` only when >= 4 of 5 seeds read no catastrophe at every N and the
    utility moves away from base with N (a significant rise, nothing falling); a fall toward base
    with N (the asymptotic prediction showing) agrees; anything else cannot tell."""
    no = cell_row(_seeds(["improving"] * 5), 0.95)
    some = cell_row(_seeds(["improving"] * 3 + ["catastrophic"] * 2), 0.95)
    cat = cell_row(_seeds(["catastrophic"] * 4 + ["over-optimized"]), 0.95)
    assert (no["verdict"], no["agree"]) == ("improving", 5) and (cat["verdict"], cat["agree"]) == ("catastrophic", 4)
    up, flat, down = (0.3, 0.1, 0.5), (0.05, -0.1, 0.2), (-0.3, -0.5, -0.1)
    assert agreement("catastrophic", [no, no], _trend(up, up)) == "disagrees"
    assert agreement("catastrophic", [no, no], _trend(flat, flat)) == "undecided"
    assert agreement("catastrophic", [no, no], _trend(up, down)) == "agrees"
    assert agreement("catastrophic", [some, no], _trend(up, up)) == "undecided"  # 3 of 5 at one N
    assert agreement("catastrophic", [no, cat], _trend(flat, flat)) == "agrees"
    assert agreement("no catastrophe", [cat, cat], []) == "disagrees"
    unres = cell_row(_seeds(["unresolved"] * 3 + ["catastrophic"] * 2), 0.95)
    assert agreement("no catastrophe", [cat, unres], []) == "undecided"
    assert agreement("no catastrophe", [cat, some], []) == "agrees"  # 3 of 5 fine at the largest N
    assert agreement("no catastrophe", [cat, no], []) == "agrees"
    assert agreement("none", [no], []) == "n/a"


def _spec(
    targets,
    laws=("gaussian", "pareto(alpha=1.5)"),
    seeds=(0, 1, 2),
    keep=("kl", "bon", "chi2", "clip", "ens_min", "info"),
):
    spec = yaml.safe_load((configs_dir() / "sweep" / "arena.yaml").read_text())
    spec.pop("quick")
    spec["base"] = str(configs_dir() / "base.yaml")
    spec["jobs"] = 1
    spec["grid"] = {"reward.error": list(laws), "seed": list(seeds)}
    spec["zip"] = {"sampling.n": [256, 1024], "prompts.n_eval": [4, 4]}
    spec["branches"] = [{**b, "grid": {"algo.kl.target": targets}} for b in spec["branches"] if b["name"] in keep]
    return spec


def _check(in_tmp, capsys, laws, seeds, keep):
    """Sweep + report; every column's points at the same KL targets (the clip's up to log 100, its
    own limit), the grid's end the argmax, each cell's seeds, alarm-stop's own numbers; then the
    grid extended past its end: new points (copies of the argmax), no verdict moved."""
    (in_tmp / "a.yaml").write_text(yaml.safe_dump(_spec([0.5, 2.0, 30.0], laws, seeds, keep)))
    assert main(["sweep", "a.yaml", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", "runs/arena", "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    assert (
        "Arena (pipeline/report/arena.py)" in out and f"seeds agreeing of {len(seeds)}" in out and "alarm-stop" in out
    )
    assert "predictions (pipeline/report/arena_theory.py" in out
    rep = in_tmp / "runs" / "arena" / "report"
    cells = pd.read_csv(rep / "arena.csv")
    # laws x N x (columns + alarm-stop + holdout-stop: the kl column carries a held-out proxy, eval.holdout)
    assert len(cells) == len(laws) * 2 * (len(keep) + 2)
    assert set(cells["seeds"]) == {len(seeds)} and (cells["agree"] >= 1).all()
    assert (cells["agree"] <= len(seeds)).all()
    pts = pd.read_csv(rep / "verdicts.csv")
    for t in (0.5, 2.0):  # every column at the same KL target on every pool
        at = pts[pts["x"] == t]
        assert len(at) == len(laws) * len(keep) * len(seeds) * 2
        assert (at[M.KL] - t).abs().max() < 1e-5 * t
    end = pts[pts["x"] == 30.0]
    clip = end["column"] == "clip"
    assert (end.loc[~clip, M.KL_AT_LIMIT] == 1).all() and (end.loc[clip, M.KL] < np.log(100) + 0.2).all()
    for n in (256, 1024):  # the argmax: KL log N on a continuous pool
        assert (end.loc[~clip & (end[M.N_SAMPLES] == n), M.KL] - np.log(n)).abs().max() < 1e-9
    g = cells.set_index(["error_law", "column", "N"])
    law = laws[0] + " x1"
    stop = g.loc[(law, "alarm-stop", 1024)]
    assert stop["stop_regret"] >= 0 and stop["stop_utility"] <= g.loc[(law, "kl", 1024), "best_utility"] + 1e-9
    hstop = g.loc[(law, "holdout-stop", 1024)]
    assert hstop["stop_regret"] >= 0 and hstop["stop_utility"] <= g.loc[(law, "kl", 1024), "best_utility"] + 1e-9
    kl_pts = pts[pts["column"] == "kl"]
    assert kl_pts[M.GAIN_HOLDOUT].notna().all() and pts.loc[pts["column"] != "kl", M.GAIN_HOLDOUT].isna().all()
    trends = pd.read_csv(rep / "arena_trend.csv")
    assert {"dU", "dU/lo", "dU/hi"} <= set(trends.columns) and (trends["n1"] == 256).all()
    assert (rep / "arena_heatmap.png").stat().st_size > 20_000
    md = (rep / "report.md").read_text()
    assert "## Arena: error law x column, at matched KL" in md and "### The trend in N at matched KL" in md

    (in_tmp / "b.yaml").write_text(yaml.safe_dump(_spec([0.5, 2.0, 30.0, 60.0], laws, seeds, keep)))
    assert main(["sweep", "b.yaml", "--quiet"]) == 0
    assert main(["report", "runs/arena", "--no-mlflow"]) == 0
    wider = pd.read_csv(rep / "arena.csv").set_index(["error_law", "column", "N"])
    cols = ["verdict", "agree", "verdicts", "best_utility", "agreement"]
    pd.testing.assert_frame_equal(wider[cols].sort_index(), g[cols].sort_index())
    return g


def test_arena_sweep_and_report_small(in_tmp, capsys):
    """configs/sweep/arena.yaml cut down to one law, three columns, two seeds."""
    _check(in_tmp, capsys, ("pareto(alpha=1.5)",), (0, 1), ("kl", "chi2", "clip"))


@pytest.mark.slow
def test_arena_sweep_and_report(in_tmp, capsys):
    """2 laws x 6 columns x 3 seeds x N = 256, 1,024 x 3 targets."""
    g = _check(
        in_tmp, capsys, ("gaussian", "pareto(alpha=1.5)"), (0, 1, 2), ("kl", "bon", "chi2", "clip", "ens_min", "info")
    )
    assert g.loc[("gaussian x1", "kl", 1024), "verdict"] == "improving"
    assert g.loc[("gaussian x1", "kl", 1024), "U@2"] > 0.5
