"""The verdict rule on small curves rebuilt from the cases of issue 19 (held-out sweeps read by a
referee with the exact curve): each rule change is pinned here by the case that asked for it."""

import pandas as pd
import pytest

from goodhart.eval import metrics as M
from goodhart.eval.goodhart import VerdictRule, label_points, rule_text, summarize_groups, sweep_verdict

CONTRACT = ("verdict", "why", "curve", "flags", "algo", "x", "x_name", "kl", "peak")


def pts(algo, xs, kl, proxy, util, ulo, uhi, law="x", x_name="n", **cols):
    """One optimizer's points on one curve, with the intervals given (no per-prompt units)."""
    rows = []
    for i, (x, k, p, u, lo, hi) in enumerate(zip(xs, kl, proxy, util, ulo, uhi)):
        rows.append(
            {
                "status": "done",
                "point_id": f"{law}-{algo}-{i}",
                "error_law": law,
                "algo": algo,
                "x_name": x_name,
                "x": x,
                M.KL: k,
                M.GAIN_PROXY: p,
                M.lo(M.GAIN_PROXY): 0.8 * p,
                M.hi(M.GAIN_PROXY): 1.2 * p,
                M.GAIN_UTILITY: u,
                M.lo(M.GAIN_UTILITY): lo,
                M.hi(M.GAIN_UTILITY): hi,
                **cols,
            }
        )
    return pd.DataFrame(rows)


def by_knob(lab, algo):
    g = lab[lab["algo"] == algo]
    return dict(zip(g["x"], g["verdict"]))


def test_t3_best_of_65536_is_over_optimized_not_catastrophic():
    # Utility N(0, sd 2), t3 error of sd 1, pool 262,144: exact utility 0.609 at n = 65,536, 15%
    # of the peak 4.053 (n = 256). The share 0.018 is < 0.05 x share0 (collapsed), which the old
    # rule took for the label; utility is not shown near base (lower bound 0.43 > 0.405).
    ns = [1, 4, 16, 256, 4096, 65536]
    kl = [0.0, 0.636, 1.835, 4.549, 7.318, 10.09]
    util = [0.0, 1.884, 3.91, 4.053, 1.937, 0.672]
    half = [0.0, 0.05, 0.08, 0.1, 0.15, 0.2425]
    proxy = [0.0, 2.5, 5.5, 9.0, 18.0, 37.3]
    df = pts(
        "bon",
        ns,
        kl,
        proxy,
        util,
        [u - h for u, h in zip(util, half)],
        [u + h for u, h in zip(util, half)],
        **{M.BASE_SHARE2: 0.8, M.BASE_GAIN2: 1.035, M.N_SAMPLES: 262_144},
    )
    lab = label_points(df)
    last = lab.iloc[-1]
    assert last["verdict"] == "over-optimized", last["why"]
    assert "collapsed" in last["why"] and "0.405" in last["why"]
    assert by_knob(lab, "bon")[256] == "improving" and lab["peak"].sum() == 1
    assert "n>N/4" not in " ".join(lab["flags"])  # 65,536 = N/4 exactly
    assert sweep_verdict(summarize_groups(lab)) == "no-catastrophe"


def test_levy_best_of_16_is_not_catastrophic():
    # Utility N(0, sd 2), Levy error: peak at n = 4 (0.52), n = 16 at 14.6% of it; share0 5e-8 on
    # an infinite-mean error, so every share 'collapses' against it.
    df = pts(
        "bon",
        [1, 2, 4, 8, 16],
        [0.0, 0.193, 0.636, 1.204, 1.835],
        [0.0, 40.0, 300.0, 2e3, 2e4],
        [0.0, 0.51, 0.52, 0.33, 0.076],
        [0.0, 0.48, 0.49, 0.30, 0.056],
        [0.0, 0.54, 0.55, 0.36, 0.096],
        **{M.BASE_SHARE2: 5e-8, M.BASE_GAIN2: 0.51},
    )
    lab = label_points(df)
    assert by_knob(lab, "bon")[16] == "over-optimized", lab["why"].iloc[-1]
    assert "catastrophic" not in set(lab["verdict"])


def lognormal_curve():
    """lognormal(1) x0.3 error, VADER utility, 32 prompts: best-of-n peaks at n = 8; tilt's own
    curve rises through beta = 1.5 (0.184 at KL 0.90, below best-of-4's 0.325 at KL 0.63) to a
    peak at beta = 1 and stays 24-36% under best-of-n's peak after it."""
    bon = pts(
        "bon",
        [1, 2, 4, 8, 16, 32],
        [0.0, 0.19, 0.63, 1.19, 1.83, 2.5],
        [0.0, 0.3, 0.6, 0.9, 1.3, 1.8],
        [0.0, 0.20, 0.325, 0.36, 0.33, 0.27],
        [0.0, 0.17, 0.29, 0.32, 0.28, 0.20],
        [0.0, 0.23, 0.36, 0.40, 0.38, 0.34],
        law="lognormal",
    )
    tilt = pts(
        "tilt",
        [2.0, 1.5, 1.0, 0.5, 0.25],
        [0.5, 0.90, 1.5, 2.5, 3.2],
        [0.5, 0.9, 1.4, 2.0, 2.4],
        [0.15, 0.184, 0.25, 0.23, 0.27],
        [0.11, 0.124, 0.15, 0.11, 0.13],
        [0.19, 0.244, 0.35, 0.35, 0.41],
        law="lognormal",
        x_name="beta",
    )
    return label_points(pd.concat([bon, tilt], ignore_index=True))


def test_lognormal_tilt_below_the_frontier_is_not_improving():
    lab = lognormal_curve()
    tilt = lab[lab["algo"] == "tilt"].set_index("x")
    b15 = tilt.loc[1.5]
    assert b15["verdict"] == "unresolved" and "dominated" in b15["flags"]
    assert "bon n=4 at KL 0.63 (0.325)" in b15["why"] and "improving along its own curve" in b15["why"]
    # past tilt's own peak (beta = 1), drops the intervals cannot call significant: not improving
    for beta in (0.5, 0.25):
        assert tilt.loc[beta, "verdict"] == "unresolved", tilt.loc[beta, "why"]
        assert "minimal detectable" in tilt.loc[beta, "why"]
    assert "improving" not in set(tilt["verdict"])
    # Each optimizer has its own peak; the curve's frontier peak is best-of-8.
    assert list(lab[lab["peak"]]["x"]) == [8, 1.0]
    assert lab[lab["frontier_peak"]]["x"].tolist() == [8]
    bon = by_knob(lab, "bon")
    assert [bon[n] for n in (2, 4, 8)] == ["improving"] * 3
    # 0.27 [0.20, 0.34]: drop 0.09 [0.009, 0.17] from 0.36 (unpaired), one-sided p = 0.014: above
    # Holm's 0.025 / 2 over bon's two past-peak points (rule 2), so the data do not show it
    assert bon[32] == "unresolved" and "minimal detectable drop" in lab[lab["x"] == 32]["why"].iloc[0]


def t2_curve(half):
    """t2 x1.0, 24 prompts: peak 0.164 at n = 4; past it the utility gains are 0.001-0.007 with
    intervals of about +-0.15 while the proxy gain is 14-20."""
    util = [0.0, 0.12, 0.164, 0.09, 0.007, 0.001, 0.004, 0.006, 0.002]
    ulo = [0.0, 0.07, 0.11] + [u - h for u, h in zip(util[3:], half)]
    uhi = [0.0, 0.17, 0.22] + [u + h for u, h in zip(util[3:], half)]
    return pts(
        "bon",
        [1, 2, 4, 8, 16, 32, 64, 128, 256],
        [0.0, 0.19, 0.63, 1.19, 1.83, 2.5, 3.17, 3.85, 4.53],
        [0.0, 0.15, 0.3, 2.0, 14.0, 16.0, 17.0, 19.0, 20.0],
        util,
        ulo,
        uhi,
        law="t2",
        **{M.BASE_SHARE2: 0.3, M.BASE_GAIN2: 0.12},
    )


def test_t2_past_its_peak_is_unresolved_with_its_minimal_detectable_drop_and_never_flips():
    # Half-widths chosen so the unpaired drop's lower bound falls on both sides of 0: the old
    # rule flipped between over-optimized and unresolved on these equal numbers.
    for half in ([0.08, 0.13, 0.15, 0.17, 0.12, 0.16], [0.08, 0.16, 0.14, 0.12, 0.17, 0.13]):
        lab = label_points(t2_curve(half))
        past = lab[lab["x"] >= 16]
        assert set(past["verdict"]) == {"unresolved"}, list(zip(past["drop/lo"], past["verdict"]))
        assert all("minimal detectable drop" in w for w in past["why"])
        assert (past["mdd"] > 0.15).all()  # what these intervals could have seen: the whole peak
        assert (past["drop/lo"] > 0).any() and (past["drop/lo"] < 0).any()
    # With tight intervals the same estimates are shown near base: catastrophic.
    lab = label_points(t2_curve([0.008] * 6))
    assert set(lab[lab["x"] >= 16]["verdict"]) == {"catastrophic"}


def test_the_near_base_floor_is_best_of_2s_gain():
    # One optimizer whose own peak is tiny (a hack found at once): 10% of its peak is 0.001,
    # far inside any interval; best-of-2 on the same pool buys 0.2, so the floor is 0.02.
    ppo = pts(
        "ppo",
        [0.3, 0.03],
        [50.0, 90.0],
        [300.0, 700.0],
        [0.010, 0.005],
        [0.002, -0.005],
        [0.018, 0.015],
        x_name="beta",
        **{M.BASE_SHARE2: 0.4},
    )
    without = label_points(ppo)
    assert list(without["verdict"]) == ["improving", "unresolved"]
    with_floor = label_points(ppo.assign(**{M.BASE_GAIN2: 0.2, M.lo(M.BASE_GAIN2): 0.19, M.hi(M.BASE_GAIN2): 0.21}))
    assert list(with_floor["verdict"]) == ["catastrophic", "catastrophic"]
    assert "near-base margin 0.02 = 0.1 x max(curve peak, best-of-2 gain 0.2)" in with_floor["why"].iloc[0]
    assert with_floor["near_base_margin"].to_numpy() == pytest.approx([0.02, 0.02])


def test_a_light_curve_with_two_optimizers_stays_improving():
    # The README demo's gaussian curve (bon and tilt on one pool): tilt at low beta is low-ESS
    # and pool-dependent (it cannot be a peak nor set the frontier), bon n=256 is the peak.
    bon = pts(
        "bon",
        [1, 2, 4, 8, 16, 32, 64, 128, 256],
        [0.0, 0.19, 0.625, 1.191, 1.827, 2.497, 3.175, 3.858, 4.53],
        [0.0, 0.381, 0.695, 0.953, 1.168, 1.349, 1.505, 1.639, 1.756],
        [0.0, 0.192, 0.342, 0.439, 0.5, 0.541, 0.571, 0.602, 0.65],
        [0.0, 0.177, 0.317, 0.413, 0.473, 0.51, 0.532, 0.552, 0.587],
        [0.0, 0.207, 0.366, 0.465, 0.527, 0.572, 0.61, 0.652, 0.713],
        law="gaussian",
        **{M.N_SAMPLES: 256},
    )
    tilt = pts(
        "tilt",
        [2, 1, 0.5, 0.25, 0.1, 0.05],
        [0.057, 0.222, 0.793, 2.222, 4.38, 4.992],
        [0.229, 0.449, 0.835, 1.331, 1.698, 1.745],
        [0.111, 0.213, 0.371, 0.529, 0.627, 0.643],
        [0.102, 0.197, 0.345, 0.495, 0.575, 0.584],
        [0.120, 0.229, 0.397, 0.562, 0.679, 0.703],
        law="gaussian",
        x_name="beta",
    ).assign(ess_ok=[True, True, True, False, False, False], pool_dependent=[False] * 4 + [True, True])
    lab = label_points(pd.concat([bon, tilt], ignore_index=True))
    assert set(lab["verdict"]) == {"baseline", "improving"}, lab[["algo", "x", "verdict", "why"]]
    assert "dominated" not in " ".join(lab["flags"])
    flags = dict(zip(lab["x"][lab["algo"] == "bon"], lab["flags"][lab["algo"] == "bon"]))
    assert "n>N/4" in flags[128] and "n>N/4" in flags[256] and "n>N/4" not in flags[64]
    assert list(lab[lab["peak"]]["x"]) == [0.5, 256]  # tilt's clean peak, bon's peak


def test_every_label_keeps_its_numbers_and_the_contract_columns():
    lab = pd.concat([lognormal_curve(), label_points(t2_curve([0.15] * 6))])
    assert all(c in lab for c in CONTRACT)
    assert lab["peak"].dtype == bool
    for _, r in lab.iterrows():
        assert any(ch.isdigit() for ch in r["why"]), r["why"]
    # one peak per (curve, optimizer)
    assert (lab.groupby(["error_law", "algo"])["peak"].sum() == 1).all()


def test_rule_text_is_the_one_source_and_names_its_thresholds():
    text = rule_text(VerdictRule(near_base=0.15, share_floor=0.02))
    assert "0.15 x max(the curve's peak gain, best-of-2's utility gain" in text
    assert "0.02 x share0" in text and "dominated" in text and "80% power" in text


def test_utility_shown_below_base_while_the_proxy_rises_is_catastrophic():
    # A proxy that is anti-correlated with utility: no peak, no share reference (share0 < 0);
    # the utility is shown below base at every moved point.
    df = pts(
        "bon",
        [1, 2, 4],
        [0.0, 0.19, 0.63],
        [0.0, 1.0, 2.0],
        [0.0, -0.5, -1.0],
        [0.0, -0.55, -1.05],
        [0.0, -0.45, -0.95],
    )
    lab = label_points(df)
    assert list(lab["verdict"]) == ["baseline", "catastrophic", "catastrophic"]
    assert "shown below base" in lab["why"].iloc[1]
