"""The arena (issue 20): alarm-chosen stopping, the theory's predictions, and a quick variant of
configs/sweep/arena.yaml end to end through `goodhart sweep` and `goodhart report`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from goodhart.eval import metrics as M
from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.report.arena import alarm_knob, cell_summary, predict


def _curve(levels, utility, kl=None):
    n = len(levels)
    return pd.DataFrame(
        {
            M.KL: kl or [0.1 * (i + 1) for i in range(n)],
            M.ALARM_LEVEL: levels,
            M.GAIN_UTILITY: utility,
            M.GAIN_PROXY: [1.0 * (i + 1) for i in range(n)],
            "verdict": ["improving"] * n,
            "peak": [u == max(utility) for u in utility],
            "x": list(range(n)),
        }
    )


def test_alarm_knob_is_the_last_point_before_the_first_alarm():
    """alarm-stop stops at `alarm`, not `watch`: on a heavy pool the pool's tail test puts every
    knob at `watch`, and stopping there kept the gentlest knob (utility ~0) far from gold's best."""
    assert alarm_knob(_curve(["quiet", "quiet", "watch", "quiet", "alarm"], [0.1, 0.2, 0.3, 0.4, 0.5])) == 3
    assert alarm_knob(_curve(["watch"] * 4 + ["alarm"], [0.1, 0.2, 0.3, 0.4, 0.5])) == 3
    assert alarm_knob(_curve(["quiet"] * 3, [0.1, 0.2, 0.3])) == 2
    assert alarm_knob(_curve(["alarm", "quiet"], [0.1, 0.2])) is None
    s = cell_summary(_curve(["quiet", "quiet", "alarm", "alarm"], [0.1, 0.5, 0.9, 0.2]))
    assert s["alarm_utility"] == 0.5 and s["best_utility"] == 0.9
    assert s["regret_utility"] == pytest.approx(0.4) and s["regret_nats"] == pytest.approx(0.3 - 0.2)
    s = cell_summary(_curve(["alarm", "alarm"], [0.3, 0.1]))
    assert s["alarm_utility"] == 0.0 and s["alarm_kl"] == 0.0 and s["regret_nats"] == pytest.approx(0.1)


def test_predictions_follow_the_theory():
    assert predict("gaussian x1", "kl")[0] == "no catastrophe"
    assert predict("lognormal(sigma=1) x1", "kl")[0] == "catastrophic"
    assert predict("student_t(df=3) x1", "chi2")[0] == "no catastrophe"
    assert predict("pareto(alpha=2.5) x1", "mixed")[0] == "no catastrophe"
    for law in ("student_t(df=2) x1", "pareto(alpha=1.5) x1", "levy x1"):
        assert predict(law, "chi2")[0] == "catastrophic"
    assert predict("pareto(alpha=1.5) x1", "ens_min")[0] == "catastrophic"  # Pareto(6): still heavy
    assert predict("levy x1", "clip")[0] == "no catastrophe"


def _bo2_gain_pareto(alpha: float) -> float:
    """Best-of-2's utility gain for proxy V + X, V ~ N(0, 1), X ~ Pareto(alpha): with S = V1 - V2 ~
    N(0, 2) and D = X2 - X1, E[V_chosen] = E[S 1{S > D}] = E_D[sqrt(2) phi(D / sqrt(2))]
    (a bounded integrand: Monte Carlo over D to ~1e-3)."""
    from scipy import stats

    rng = np.random.default_rng(0)
    x = stats.pareto(alpha).rvs(size=(2, 400_000), random_state=rng)
    return float(np.mean(np.sqrt(2) * stats.norm.pdf((x[1] - x[0]) / np.sqrt(2))))


def test_quick_arena_sweep_and_report(in_tmp, capsys):
    """configs/sweep/arena.yaml cut down to 2 laws x 3 mitigations x 3 knobs on a small pool."""
    spec = yaml.safe_load((configs_dir() / "sweep" / "arena.yaml").read_text())
    spec["base"] = str(configs_dir() / "base.yaml")
    spec["set"].update({"sampling.n": 512, "prompts.n_eval": 8})
    spec["grid"] = {"reward.error": ["gaussian", "pareto(alpha=1.5)"], "algo.kl.coef": [3, 0.5, 0.05]}
    spec["branches"] = [b for b in spec["branches"] if b["name"] in ("kl", "chi2", "ens_min")]
    (in_tmp / "a.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "a.yaml", "--quiet"]) == 0
    assert main(["report", "runs/arena", "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    assert "Arena (pipeline/report/arena.py)" in out and "alarm-stop" in out
    rep = in_tmp / "runs" / "arena" / "report"
    cells = pd.read_csv(rep / "arena.csv")
    assert len(cells) == 2 * 4  # 3 mitigations + alarm-stop per law
    c = cells.set_index(["error_law", "mitigation"])
    for m in ("kl", "chi2"):
        assert c.loc[("gaussian x1", m), "verdict"] == "improving"
        assert c.loc[("gaussian x1", m), "agreement"] == "agrees"
    assert c.loc[("gaussian x1", "kl"), "best_utility"] > 0.2
    # pareto(1.5) under the KL tilt: catastrophic, or -- the rule's honest answer on 8 prompts --
    # unresolved, and then for the rule's own reason: the utility interval straddles the near-base
    # margin m = 0.1 x best-of-2's utility gain on the pool (no peak rose above it), while the
    # utility share has collapsed below 5% of share0. Showing the upper bound below m would take
    # thousands of prompts (a per-prompt spread of ~1 against m ~ 0.04; docs/arena.md).
    p = c.loc[("pareto(alpha=1.5) x1", "kl")]
    assert p["verdict"] in ("catastrophic", "unresolved") and p["agreement"] != "disagrees"
    assert p["near_base_margin"] == pytest.approx(0.1 * _bo2_gain_pareto(1.5), abs=0.005)
    if p["verdict"] == "unresolved":
        assert p["agreement"] == "undecided" and "unres?" in out
        assert p["verdict_utility_lo"] < p["near_base_margin"] <= p["verdict_utility_hi"]
    assert p["verdict_share_hi"] < 0.05 * p["share0"]
    assert (rep / "arena_heatmap.png").stat().st_size > 20_000
    md = (rep / "report.md").read_text()
    assert "## Arena: error law x mitigation" in md and "![arena heat map](arena_heatmap.png)" in md
