"""Rule 2 of the verdicts (eval/goodhart.py VERSION 2), each change pinned by a small constructed
case with a known answer (issue 29); each test fails when its change is reverted."""

import numpy as np
import pandas as pd
import pytest

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import VERSION, VerdictRule, label_points, power_table, summarize_groups, sweep_verdict
from goodhart.eval.sequential import holm, holm_adjusted, look_alphas, need_factor, spent


def row(pid, x, kl, p, plo, phi, u, ulo, uhi, algo="bon", law="x", x_name="n", **cols):
    return {
        "status": "done",
        "point_id": pid,
        "error_law": law,
        "algo": algo,
        "x_name": x_name,
        "x": x,
        M.KL: kl,
        M.GAIN_PROXY: p,
        M.lo(M.GAIN_PROXY): plo,
        M.hi(M.GAIN_PROXY): phi,
        M.GAIN_UTILITY: u,
        M.lo(M.GAIN_UTILITY): ulo,
        M.hi(M.GAIN_UTILITY): uhi,
        **cols,
    }


def test_rule_version_is_2():
    assert VERSION == 2


# ---- a missing interval is never zero-width ---------------------------------------------------
def one_prompt_curve(**last):
    """A rising curve whose last point rests on one prompt: utility -0.382, no interval (the
    `goodhart analyze` case of issue 29: 8 samples of one prompt read CATASTROPHIC)."""
    nan = float("nan")
    rows = [
        row("a0", 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        row("a1", 2, 0.19, 1.0, 0.8, 1.2, 0.3, 0.25, 0.35),
        row("a2", 4, 0.63, 2.0, 1.8, 2.2, 0.5, 0.45, 0.55),
        row("a3", 8, 1.2, 3.0, nan, nan, -0.382, nan, nan, **last),
    ]
    return pd.DataFrame(rows)


def test_a_point_without_an_interval_is_unresolved_not_read_at_face_value():
    lab = label_points(one_prompt_curve())
    last = lab.iloc[-1]
    assert last["verdict"] == "unresolved", last["why"]
    assert "no interval" in last["why"] and "not taken at face value" in last["why"]
    assert sweep_verdict(summarize_groups(lab)) == "unresolved"  # not catastrophic
    # the same with per-prompt units: one prompt is one unit
    units = {"a3": {"gain_proxy": np.array([3.0]), "gain_utility": np.array([-0.382])}}
    assert label_points(one_prompt_curve(), VerdictRule(), units).iloc[-1]["verdict"] == "unresolved"


def test_only_a_row_flagged_exact_by_a_column_is_taken_at_face_value():
    lab = label_points(one_prompt_curve(**{M.EXACT: True}))
    assert lab.iloc[-1]["verdict"] == "catastrophic" and "-0.382 [-0.382, -0.382]" in lab.iloc[-1]["why"]


def test_a_one_prompt_point_in_analyze_is_unresolved(tmp_path):
    from goodhart.pipeline.report.analyze import analyze

    rng = np.random.default_rng(0)
    rows = [
        {"point": "base", "prompt": f"p{j}", "proxy": rng.normal(), "utility": rng.normal(), "kl": 0.0}
        for j in range(4)
        for _ in range(8)
    ]
    rows += [
        {"point": "step1", "prompt": "p0", "proxy": 3 + rng.normal(), "utility": -0.4, "kl": 2.0} for _ in range(8)
    ]
    res = analyze(pd.DataFrame(rows), tmp_path / "out")
    lab = res.labelled
    assert list(lab[lab["x"] == lab["x"].max()]["verdict"]) == ["unresolved"]
    assert res.report.verdict != "catastrophic"


# ---- a significant drop is never hidden by `unresolved` -----------------------------------------
def test_a_shown_drop_is_over_optimized_even_when_the_interval_reaches_near_base():
    # Issue 29: best-of-1,024 dropped 0.45 [0.39, 0.52] from a 0.435 peak, utility -0.015 with an
    # interval reaching both sides of the near-base band (margin 0.0435): the drop is shown.
    rng = np.random.default_rng(3)
    P = 32
    prompt = rng.normal(0, 0.25, P)  # between-prompt spread shared by both points: cancels when paired
    peak = 0.435 + prompt + rng.normal(0, 0.03, P)
    late = peak - 0.45 + rng.normal(0, 0.15, P)
    units = {
        "b0": {"gain_proxy": np.zeros(P), "gain_utility": np.zeros(P)},
        "b1": {"gain_proxy": 2 + rng.normal(0, 0.1, P), "gain_utility": peak},
        "b2": {"gain_proxy": 9 + rng.normal(0, 0.5, P), "gain_utility": late},
    }
    df = pd.DataFrame(
        [
            row("b0", 1, 0.0, 0, 0, 0, 0, 0, 0),
            row("b1", 16, 1.8, 2, 1.9, 2.1, 0.435, 0.34, 0.53),
            row("b2", 1024, 5.9, 9, 8.8, 9.2, -0.015, -0.2, 0.17),
        ]
    )
    lab = label_points(df, VerdictRule(), units)
    last = lab.iloc[-1]
    assert last["drop/lo"] > 0.35 and last[M.hi(M.GAIN_UTILITY)] > lab["near_base_margin"].iloc[0]
    assert last[M.lo(M.GAIN_UTILITY)] < lab["near_base_margin"].iloc[0]
    assert last["verdict"] == "over-optimized", last["why"]
    assert "back at base not excluded" in last["why"] and bool(last["open"])
    # the curve is not called catastrophic, nor clear: that point may be back at base
    assert sweep_verdict(summarize_groups(lab)) == "unresolved"


# ---- share collapse: only at or past the optimizer's own peak, with the proxy shown > 0 ----------
def test_share_collapse_before_the_optimizers_own_peak_is_not_catastrophic():
    # Issue 29, the arena's chi^2 on pareto(1.5) at its gentlest knob: utility 0.00995 [0.0079,
    # 0.012] (Var(V)/coef, what a Gaussian error gives), a share collapsed against share0, and the
    # same curve rises to 0.289 [0.239, 0.338] at coef 3.
    df = pd.DataFrame(
        [
            row("c0", 100, 0.012, 29.3, 20.0, 38.6, 0.00995, 0.0079, 0.012, algo="tilt-chi2", x_name="kl.coef"),
            row("c1", 10, 0.2, 60.0, 40.0, 80.0, 0.1, 0.08, 0.12, algo="tilt-chi2", x_name="kl.coef"),
            row("c2", 3, 1.0, 120.0, 90.0, 150.0, 0.289, 0.239, 0.338, algo="tilt-chi2", x_name="kl.coef"),
        ]
    ).assign(**{M.BASE_SHARE2: 0.4})
    lab = label_points(df)
    first = lab.iloc[0]
    assert first["share/hi"] < 0.05 * 0.4 and first[M.hi(M.GAIN_UTILITY)] < first["near_base_margin"]
    assert first["verdict"] == "improving", first["why"]
    assert "catastrophic" not in set(lab["verdict"])


def test_share_collapse_needs_the_proxy_gain_shown_by_its_interval():
    # A lone PPO point at its own peak, near base (margin 0.02 from best-of-2's 0.2), its share
    # collapsed; the proxy moved by the sign test over prompts (every prompt gained) but its mean's
    # interval straddles 0 (one prompt's gain is huge and negative-skewed noise elsewhere).
    P = 16
    gp = np.full(P, 1.0)
    gp[0] = 4000.0
    gp[1:] += np.linspace(0, 0.1, P - 1)
    rng = np.random.default_rng(1)
    gu = 0.008 + rng.normal(0, 0.01, P)
    units = {"p0": {"gain_proxy": gp, "gain_utility": gu}}
    from goodhart.eval.bootstrap import t_ci

    pm, plo, phi = t_ci(gp)
    um, ulo, uhi = t_ci(gu)
    assert plo < 0 < pm and uhi < 0.02 and ulo > 0
    df = pd.DataFrame([row("p0", 0.3, 50.0, pm, plo, phi, um, ulo, uhi, algo="ppo", x_name="kl.coef")]).assign(
        **{M.BASE_SHARE2: 0.4, M.BASE_GAIN2: 0.2, M.lo(M.BASE_GAIN2): 0.19, M.hi(M.BASE_GAIN2): 0.21}
    )
    lab = label_points(df, VerdictRule(), units)
    assert lab.iloc[0]["verdict"] != "catastrophic", lab.iloc[0]["why"]
    # the same point with the proxy's interval above 0 is catastrophic (at its own peak, collapsed)
    gp2 = 50 + rng.normal(0, 1, P)
    units2 = {"p0": {"gain_proxy": gp2, "gain_utility": gu}}
    lab2 = label_points(df, VerdictRule(), units2)
    assert lab2.iloc[0]["verdict"] == "catastrophic", lab2.iloc[0]["why"]


# ---- many looks along a curve: Holm ------------------------------------------------------------
def test_one_chance_drop_on_a_long_light_curve_is_not_over_optimized():
    # A still-rising light curve (issue 29: gumbel best-of-16,384): the peak by lower bound at
    # n = 512, then one point 0.033 lower by chance (one-sided p = 0.011 unpaired), two more flat.
    ns = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    util = [0.0, 0.1, 0.2, 0.3, 0.4, 0.48, 0.55, 0.6, 0.64, 0.68, 0.647, 0.675, 0.678]
    h = 0.02
    rows = [
        row(f"g{i}", n, float(np.log(n) - (n - 1) / n), 1.0 * i, 0.9 * i, 1.1 * i, u, u - h, u + h)
        for i, (n, u) in enumerate(zip(ns, util))
    ]
    rows[0].update({M.lo(M.GAIN_UTILITY): 0.0, M.hi(M.GAIN_UTILITY): 0.0})
    lab = label_points(pd.DataFrame(rows))
    by = dict(zip(lab["x"], lab["verdict"]))
    assert lab[lab["peak"]]["x"].tolist() == [512]
    r = lab[lab["x"] == 1024].iloc[0]
    assert 0 < r["drop/lo"], "per point, the drop is 'significant' at 95%"
    assert r["drop/p_holm"] > 0.025 and by[1024] == "unresolved", r["why"]
    assert "Holm over 3 past-peak point(s)" in r["why"]
    assert "over-optimized" not in set(lab["verdict"])


def test_holm_and_spending_against_hand_computed_values():
    # Holm at 0.05 over p = (0.01, 0.04, 0.03, 0.005): thresholds 0.0125, 0.0167, 0.025, 0.05 for
    # the sorted 0.005, 0.01, 0.03, 0.04: reject the first two, stop at 0.03 > 0.025.
    assert list(holm([0.01, 0.04, 0.03, 0.005], 0.05)) == [True, False, False, True]
    assert holm_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert list(holm([0.01, float("nan")], 0.05)) == [True, False]  # NaN: not counted in m
    # O'Brien-Fleming spending: 2 - 2 Phi(1.96 / sqrt(t)); Pocock: alpha ln(1 + (e - 1) t)
    assert spent(0.5, 0.05) == pytest.approx(0.005575, abs=2e-6)
    assert spent(1.0, 0.05) == pytest.approx(0.05) and spent(1.0, 0.05, "pocock") == pytest.approx(0.05)
    a = look_alphas([1, 2, 4], 0.05)
    assert sum(a) == pytest.approx(0.05) and a[0] < a[1] < a[2]
    # ((1.96 + 0.8416) x 0.1 / 0.2)^2 = 1.962: twice the prompts give 80% power at 0.025
    assert need_factor(0.2, 0.1, 0.025, 0.8) == pytest.approx(1.962, rel=1e-3)
    assert need_factor(-0.1, 0.1, 0.025, 0.8) == float("inf")


# ---- the tilt interval covers the pool; pool bias flagged --------------------------------------
def test_tilt_interval_says_what_it_covers_and_large_pool_bias_is_flagged():
    base = dict(algo="tilt", x_name="kl.coef", **{M.TILT_POOL_BIAS_SE: 0.001})
    df = pd.DataFrame(
        [
            row("t0", 4.0, 0.05, 0.2, 0.18, 0.22, 0.25, 0.23, 0.27, **base, **{M.TILT_POOL_BIAS: -0.002}),
            row("t1", 2.0, 0.2, 0.5, 0.46, 0.54, 0.5, 0.48, 0.52, **base, **{M.TILT_POOL_BIAS: -0.011}),
        ]
    )
    lab = label_points(df)
    assert all("interval: the N-sample pool's optimum" in w for w in lab["why"])
    flags = dict(zip(lab["x"], lab["flags"]))
    # bias 0.011 beside se 0.0102: flagged; 0.002 beside se 0.0102: not
    assert "pool-bias" in flags[2.0] and "pool-bias" not in flags[4.0]


def test_jackknife_pool_bias_matches_the_exact_gaussian_tilt():
    # V ~ N(0, 1), X ~ N(0, 0.5^2): the population optimum shifts E[V] by Var(V) / beta exactly;
    # the pool of N = 64 per prompt is biased low, the jackknife estimates by how much.
    from goodhart.eval.bootstrap import t_ci
    from goodhart.eval.tilt import jackknife_bias, tilt

    P, N, beta = 32, 64, 2.0
    bias, jk, cover = [], [], 0
    for s in range(200):
        rng = np.random.default_rng(s)
        v = rng.normal(size=(P, N))
        u = v + 0.5 * rng.normal(size=(P, N))
        m, lo, hi = t_ci(tilt(u, beta, utility=v)["utility"] - v.mean(1))
        bias.append(m - 1 / beta)
        jk.append(jackknife_bias(u, beta, v).mean())
        cover += lo <= 1 / beta <= hi
    assert np.mean(bias) == pytest.approx(-0.0111, abs=0.004)  # the pool's bias (300 pools: -0.0111)
    assert np.mean(jk) == pytest.approx(np.mean(bias), abs=0.004)
    assert cover / 200 < 0.94  # the t interval covers the pool's optimum, not the population's


# ---- power: what would resolve each unresolved point ---------------------------------------------
def test_power_table_names_the_prompts_that_would_resolve_each_point():
    rows = [
        row("q0", 1, 0.0, 0, 0, 0, 0, 0, 0, **{M.N_PROMPTS: 32}),
        row("q1", 4, 0.6, 1, 0.9, 1.1, 0.3, 0.28, 0.32, **{M.N_PROMPTS: 32}),
        row("q2", 64, 3.2, 9, 8, 10, 0.01, -0.09, 0.11, **{M.N_PROMPTS: 32}),
    ]
    lab = label_points(pd.DataFrame(rows))
    pt = power_table(lab)
    assert list(pt["x"]) == [64]
    # the point's near-base claim: effect 0.03 - 0.01 = 0.02 beside se 0.1 / 2.04 (t, 31 df)
    need = ((1.96 + 0.8416) * 0.1 / 2.0395 / 0.02) ** 2
    assert pt["need"].iloc[0] == pytest.approx(need, rel=0.02) or pt["need"].iloc[0] < need
    assert pt["need/units"].iloc[0] == np.ceil(32 * pt["need"].iloc[0])
    assert "prompts at this pool size would resolve it" in lab.iloc[-1]["why"]


# ---- below the frontier, but its own curve rises into it: a weaker optimizer ----------------------
def test_a_point_its_own_curve_rises_into_is_improving_though_below_the_frontier():
    # The demo's PPO on the hackable pareto error (40 steps): coef 3 at KL 0.14 has utility
    # 0.052, coef 1 at KL 3.0 has 0.117 [0.072, 0.161], both far below best-of-2 on the base pool
    # (0.205 at KL 0.19). Alone, coef 1 cannot say whether PPO is past its peak or weaker; the
    # gentler point shows its own curve rising into it (paired on the prompts).
    rng = np.random.default_rng(2)
    P = 32
    first = 0.052 + rng.normal(0, 0.12, P)
    second = first + 0.065 + rng.normal(0, 0.03, P)
    units = {
        "k3": {"gain_proxy": 0.6 + rng.normal(0, 0.2, P), "gain_utility": first},
        "k1": {"gain_proxy": 19.6 + rng.normal(0, 2, P), "gain_utility": second},
    }
    from goodhart.eval.bootstrap import t_ci

    rows = []
    for pid, x, kl in (("k3", 3.0, 0.142), ("k1", 1.0, 3.03)):
        pm, plo, phi = t_ci(units[pid]["gain_proxy"])
        um, ulo, uhi = t_ci(units[pid]["gain_utility"])
        rows.append(row(pid, x, kl, pm, plo, phi, um, ulo, uhi, algo="ppo", x_name="kl.coef"))
    df = pd.DataFrame(rows).assign(
        **{M.BASE_SHARE2: 0.41, M.BASE_GAIN2: 0.205, M.lo(M.BASE_GAIN2): 0.19, M.hi(M.BASE_GAIN2): 0.22}
    )
    lab = label_points(df, VerdictRule(), units)
    top = lab[lab["x"] == 1.0].iloc[0]
    assert top["verdict"] == "improving", top["why"]
    assert "rises into it" in top["why"] and "dominated" in top["flags"]
    # without the gentler point, the same point cannot tell: unresolved
    alone = label_points(df[df["point_id"] == "k1"], VerdictRule(), units)
    assert (
        alone.iloc[0]["verdict"] == "unresolved"
        and "a weaker optimizer, the data do not say which" in alone.iloc[0]["why"]
    )
