"""The arena (issue 20): alarm-chosen stopping, the theory's predictions, and a quick variant of
configs/sweep/arena.yaml end to end through `goodhart sweep` and `goodhart report`."""

from __future__ import annotations

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


def test_alarm_knob_is_the_last_quiet_point_before_the_first_non_quiet():
    assert alarm_knob(_curve(["quiet", "quiet", "watch", "quiet", "alarm"], [0.1, 0.2, 0.3, 0.4, 0.5])) == 1
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
    assert c.loc[("gaussian x1", "kl"), "verdict"] != "catastrophic"
    assert c.loc[("gaussian x1", "chi2"), "verdict"] != "catastrophic"
    assert c.loc[("pareto(alpha=1.5) x1", "kl"), "verdict"] == "catastrophic"
    assert c.loc[("gaussian x1", "kl"), "best_utility"] > 0.2
    assert (rep / "arena_heatmap.png").stat().st_size > 20_000
    md = (rep / "report.md").read_text()
    assert "## Arena: error law x mitigation" in md and "![arena heat map](arena_heatmap.png)" in md
