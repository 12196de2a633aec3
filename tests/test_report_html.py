"""The report a researcher hands around: fitted Gao curves drawn over the points' own range (and
only where enough points pin them) with the peak where a sound fit puts it, per-panel axes that
hold their points, titles on every figure, the frontier, flags in the tables, and one
self-contained report.html."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from goodhart.eval import metrics as M
from goodhart.eval.fits import fit_bon
from goodhart.eval.plots import frontier_panels, gao_fit_panels, training_curves
from goodhart.pipeline.cli.main import main
from goodhart.pipeline.config.load import configs_dir
from goodhart.pipeline.report.html import fit_rows, gain_fits, point_flags, points_table


def gao_table() -> pd.DataFrame:
    """Two error laws x bon; utility gain exactly on R(d) = d (1 - 0.5 d) (peak d* = 1, gain 0.5)."""
    rows = []
    for law in ("gaussian x1", "pareto x1"):
        for n, kl in zip((2, 4, 8, 16, 32), (0.25, 0.7, 1.4, 2.2, 3.0)):
            d = np.sqrt(kl)
            u = d * (1 - 0.5 * d)
            p = 3 * d if law.startswith("gauss") else 40 * d
            rows.append(
                {
                    "error_law": law,
                    "algo": "bon",
                    "x_name": "n",
                    "x": n,
                    M.KL: kl,
                    M.GAIN_UTILITY: u,
                    M.lo(M.GAIN_UTILITY): u - 0.05,
                    M.hi(M.GAIN_UTILITY): u + 0.05,
                    M.GAIN_PROXY: p,
                    M.lo(M.GAIN_PROXY): p - 0.1,
                    M.hi(M.GAIN_PROXY): p + 0.1,
                    "verdict": "improving",
                }
            )
    return pd.DataFrame(rows)


def test_fitted_curve_and_peak_are_drawn_where_the_fit_puts_them():
    df = gao_table()
    fits = gain_fits(df)
    assert {(f["error_law"], f["metric"]) for f in fits} == {
        (law, g) for law in ("gaussian x1", "pareto x1") for g in (M.GAIN_PROXY, M.GAIN_UTILITY)
    }
    fit = next(f["fit"] for f in fits if f["metric"] == M.GAIN_UTILITY)
    assert fit.alpha == pytest.approx(1.0) and fit.beta == pytest.approx(0.5)  # exact data: exact fit
    assert fit.kl_star == pytest.approx(1.0) and fit.peak_gain == pytest.approx(0.5)
    for sqrt_kl in (False, True):
        fig = gao_fit_panels(df, fits, sqrt_kl)
        axes = np.array(fig.axes).reshape(2, 2)
        ax = axes[1, 0]
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 200]
        assert len(lines) == 1
        x, y = (np.asarray(a, float) for a in lines[0].get_data())
        kl = x**2 if sqrt_kl else x
        np.testing.assert_allclose(y, np.sqrt(kl) * (1 - 0.5 * np.sqrt(kl)), atol=1e-9)  # the curve is the fit
        # drawn over the group's own KL range (0.25 .. 3), not from 0 and not beyond
        assert kl.min() == pytest.approx(0.25) and kl.max() == pytest.approx(3.0)
        [star] = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
        assert star.get_xdata()[0] == pytest.approx(1.0) and star.get_ydata()[0] == pytest.approx(0.5)
        # each panel has its own axes, and they hold its points with their intervals
        assert axes[0, 0].get_ylim()[1] < axes[0, 1].get_ylim()[1]  # a proxy gain of ~7 vs ~69
        for j, law in enumerate(("gaussian x1", "pareto x1")):
            g = df[df["error_law"] == law]
            for i, gain in enumerate((M.GAIN_PROXY, M.GAIN_UTILITY)):
                (x0, x1), (y0, y1) = axes[i, j].get_xlim(), axes[i, j].get_ylim()
                x = np.sqrt(g[M.KL]) if sqrt_kl else g[M.KL]
                assert x0 < x.min() and x.max() < x1 and y0 < g[M.lo(gain)].min() and g[M.hi(gain)].max() < y1
        assert fig._suptitle is not None and fig._suptitle.get_text()  # a title even when none is passed


def test_a_fit_the_points_cannot_pin_is_not_drawn_and_an_unsound_one_has_no_star():
    df = gao_table()
    three = df[df["x"] <= 8]  # 3 points per law: a 2-coefficient curve through them says nothing more
    fig = gao_fit_panels(three, gain_fits(three))
    assert not [ln for ax in fig.axes for ln in ax.get_lines() if len(ln.get_xdata()) == 200]
    # 5 points of a gain that only rises (no peak established): drawn dashed, no star
    up = np.sqrt(df[M.KL])
    rising = df.assign(**{M.GAIN_UTILITY: up, M.lo(M.GAIN_UTILITY): up - 0.05, M.hi(M.GAIN_UTILITY): up + 0.05})
    fits = gain_fits(rising)
    assert not next(f["fit"] for f in fits if f["metric"] == M.GAIN_UTILITY).sound
    ax = np.array(gao_fit_panels(rising, fits).axes).reshape(2, 2)[1, 0]
    [curve] = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 200]
    assert curve.get_linestyle() == "--" and not [ln for ln in ax.get_lines() if ln.get_marker() == "*"]


def test_frontier_panels_and_training_curves_hold_their_points():
    df = gao_table()
    fig = frontier_panels(df)
    a, b = fig.axes[0], fig.axes[1]
    for ax, law in ((a, "gaussian x1"), (b, "pareto x1")):  # per panel: nothing piled at an edge
        g = df[df["error_law"] == law]
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert x0 < g[M.GAIN_PROXY].min() and g[M.GAIN_PROXY].max() * 1.2 < x1
        assert y0 < g[M.GAIN_UTILITY].min() and g[M.GAIN_UTILITY].max() < y1
    assert fig._suptitle is not None and fig._suptitle.get_text()
    x, y = a.get_lines()[0].get_data()
    g = df[df["error_law"] == "gaussian x1"].sort_values(M.KL)
    np.testing.assert_allclose(x, g[M.GAIN_PROXY]) and np.testing.assert_allclose(y, g[M.GAIN_UTILITY])
    steps = pd.DataFrame(
        {
            "error_law": ["g"] * 3 + ["p"] * 3,
            "algo": "ppo",
            "label": ["ppo a"] * 3 + ["ppo b"] * 3,
            "step": [1, 2, 3] * 2,
            M.PROXY: [0, 1, 2, 0, 5, 9],
            M.UTILITY: [0, 1, 1, 0, 0, -1],
            M.KL: [0, 0.1, 0.2, 0, 0.3, 0.9],
        }
    )
    fig = training_curves(steps)
    axes = np.array(fig.axes).reshape(2, 3)
    for i, law in enumerate(("g", "p")):  # each panel holds its own curve (no shared y across tails)
        for j, name in enumerate((M.PROXY, M.UTILITY, M.KL)):
            y0, y1 = axes[i, j].get_ylim()
            v = steps[steps["error_law"] == law][name]
            assert y0 <= v.min() and v.max() <= y1 and (y1 - y0) < 3 * (v.max() - v.min() + 1)
    np.testing.assert_allclose(axes[1, 2].get_lines()[0].get_ydata(), [0, 0.3, 0.9])
    assert fig._suptitle is not None and fig._suptitle.get_text()


def test_flags_and_fit_rows_read_as_words_not_infinities():
    assert point_flags({"ess_ok": False}) == "low-ESS"
    assert point_flags({"ess_ok": True, M.KL: 4.9, M.KL_MAX: np.log(256)}) == ""
    assert point_flags({M.KL: 5.2, M.KL_MAX: np.log(256)}) == "pool-bound"
    assert (
        point_flags({"ess_ok": "False", "flags": "unresolved; pool-dependent"}) == "low-ESS, unresolved, pool-dependent"
    )
    # the verdict table's own flags column joins with spaces: each flag still shows once
    both = {"ess_ok": False, "flags": "low-ESS pool-dependent", M.KL: 5.2, M.KL_MAX: np.log(256)}
    assert point_flags(both) == "low-ESS, pool-bound, pool-dependent"
    assert point_flags({"ess_ok": False, M.POOL_DEPENDENT: True, "flags": "low-ESS pool-dependent"}) == (
        "low-ESS, pool-dependent"
    )
    two = {"error_law": "g", "algo": "bon", "metric": M.GAIN_UTILITY, "fit": fit_bon([0.5, 1.0], [0.3, 0.4])}
    headers, [row] = fit_rows([two])
    assert not any("inf" in str(c) for c in row) and row[-1].startswith("no: only 2 point(s)")
    assert row[headers.index("KL at peak")] == "not established" and row[headers.index("gain at peak")] == "-"
    assert "beta" not in headers and {"a", "b"} <= set(headers)  # beta is the KL coefficient's word
    assert "inf" not in str(two["fit"]) and "no interval: too few points" in str(two["fit"])  # report.md's text
    df = gao_table().assign(ess_ok=False)
    headers, rows = points_table(df)
    assert headers[-1] == "flags" and all(r[-1] == "low-ESS" for r in rows)


def test_report_html_is_self_contained(in_tmp, capsys):
    spec = {
        "name": "h",
        "base": str(configs_dir() / "base.yaml"),
        "set": {
            "reward": "distributional",
            "sampling.n": 512,
            "prompts.n_eval": 6,
            "eval.bootstrap": 50,
            "seed": 3,
            "tracking.enabled": False,
        },
        "grid": {"reward.error": ["gaussian", "levy"]},
        "branches": [
            {"set": {"algo": "tilt"}, "grid": {"algo.kl.coef": [2.0, 0.5, 0.1]}},
            {"set": {"algo": "bon"}, "grid": {"algo.n": [1, 4, 16, 64]}},
        ],
    }
    (in_tmp / "h.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "h.yaml", "--quiet"]) == 0
    assert main(["report", "runs/h", "--no-mlflow"]) == 0
    capsys.readouterr()
    rep = in_tmp / "runs" / "h" / "report"
    page = (rep / "report.html").read_text()
    for name in ("gao_fits_kl.png", "gao_fits_sqrt_kl.png", "frontier.png"):
        assert (rep / name).stat().st_size > 20_000
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', page)) >= 4
    assert not re.search(r'src="(?!data:)', page)  # nothing to fetch: it opens anywhere
    assert "levy" in page and "seeds</td><td" in page.replace(' class=""', "").replace(' class="l"', "")
    assert ">3<" in page  # the seed, in the header
    md = (rep / "report.md").read_text()
    assert "## What was run" in md and "![frontier](frontier.png)" in md
    from goodhart.pipeline.report import legend

    for name in [*legend.flags(), *legend.scores()]:  # every flag and score explained in the page
        assert f"<code>{html.escape(name)}</code></td><td class='l'>" in page, name
        assert f"`{name}`: " in md, name
    assert html.escape(legend.TAILS_VS_ALARM) in page


def test_every_flag_a_table_can_show_is_in_the_legend():
    """The flags a row can get (sweeps/tables.point_flags, report/html.point_flags, the verdict
    rule's own `flags` column as eval/goodhart.py's rule text lists them) all have a meaning in
    report/legend.py, and every score column of the alarm table too."""
    from goodhart.eval.goodhart import rule_text
    from goodhart.pipeline.report import legend
    from goodhart.pipeline.report.alarm_tables import alarm_table

    row = {
        "algo": "bon",
        M.BON_N: 64,
        M.N_SAMPLES: 128,
        M.TILT_ESS_OK: False,
        M.POOL_DEPENDENT: True,
        M.KL: 4.8,
        M.KL_MAX: np.log(128),
        "flags": "dominated",
    }
    shown = set(point_flags(row).split(", "))
    rule_flags = re.search(r"^Flags: (.*?)\nIntervals", rule_text(), re.M | re.S).group(1)
    shown |= {w for w in re.findall(r"(?:^|, )([\w>/-]+) \(", rule_flags.replace("\n", " "))}
    assert shown == {"dominated", "n>N/4", "low-ESS", "pool-dependent", "pool-bound", "pool-bias"}
    assert shown <= set(legend.flags())
    table = alarm_table(
        pd.DataFrame([{**row, M.ALARM_LEVEL: "watch", M.ALARM_SCORE: 0.5, "error_law": "g", "x_name": "n", "x": 64}])
    )
    heads = [h.strip() for h in re.split(r"\s{2,}", table.splitlines()[0].strip())]
    assert [h for h in heads if h not in ("error", "algo", "knob", "KL", "gold verdict")] == [
        k for k in legend.scores() if k != "share"
    ]
