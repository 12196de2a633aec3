"""The held-out proxy (eval/holdout.py, pipeline/base/holdout.py, docs/holdout.md): the utility gain
of a policy chosen by one proxy, read off a second proxy with an independent error, against exact
answers; its bias when the errors share a component of known size; its labels read no gold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from goodhart.eval import metrics as M
from goodhart.eval.bon import best_of_n
from goodhart.eval.bootstrap import t_ci
from goodhart.eval.exact import bon_utility
from goodhart.eval.holdout import EST, agreement, combine, error_tail, estimated_labels
from goodhart.eval.tilt import tilt


def _pool(P=48, N=4096, seed=0, v=stats.norm(), x=stats.t(3)):
    rng = np.random.default_rng(seed)
    return v.rvs((P, N), random_state=rng), x.rvs((P, N), random_state=rng), rng


# ---------------------------------------------------------------------------------------------
# Identification, against exact answers
# ---------------------------------------------------------------------------------------------
def test_heldout_gain_is_the_exact_utility_gain_of_best_of_n():
    # V ~ N(0,1), X1 ~ t3 (heavy): best-of-64 by R1 = V + X1. R2 = V + median of 5 t3 draws reads
    # E[V | best of 64] - E[V] (numerical integration) inside its 95% interval over prompts (one
    # pool, so a 1-in-20 miss is the interval working; coverage over many pools: the bench).
    v, x1, rng = _pool(P=32, seed=1)
    x2 = combine(stats.t(3).rvs((5, *v.shape), random_state=rng), "median")
    exact = float(bon_utility(stats.norm(), stats.t(3), [64])[0])
    est = best_of_n(v + x1, 64, holdout=v + x2, utility=v)
    g = est["holdout"] - (v + x2).mean(1)
    m, lo, hi = t_ci(g)
    assert lo < exact < hi, (m, lo, hi, exact)
    # and the gold estimate on the same pool agrees with it (the held-out noise is what differs)
    assert abs(m - float(np.mean(est["utility"] - v.mean(1)))) < 0.1


def test_heldout_gain_is_the_closed_form_gaussian_tilt_shift():
    # V ~ N(0,1), X1, X2 ~ N(0, 0.7^2): the tilt at beta shifts E[V] by Var(V) / beta exactly.
    v, x1, rng = _pool(x=stats.norm(scale=0.7))
    x2 = stats.norm(scale=0.7).rvs(v.shape, random_state=rng)
    for beta in (4.0, 2.0):
        est = tilt(v + x1, beta, holdout=v + x2)
        m, lo, hi = t_ci(est["holdout"] - (v + x2).mean(1))
        assert lo < 1.0 / beta < hi, (beta, m, lo, hi)


def test_a_shared_error_component_is_read_as_utility_by_its_gain():
    # X1 = S + E1, X2 = S + E2 with S of known size: the estimate is biased by S's gain under
    # the policy, exactly (up to E2's noise), and no longer covers the utility gain.
    v, e1, rng = _pool(N=2048, x=stats.norm(scale=0.5))
    s = stats.norm(scale=0.8).rvs(v.shape, random_state=rng)
    e2 = stats.norm(scale=0.5).rvs(v.shape, random_state=rng)
    r1, r2 = v + s + e1, v + s + e2
    est = best_of_n(r1, 16, holdout=r2, utility=v, shared=s)
    gain = lambda k, a: est[k] - a.mean(1)  # noqa: E731
    bias = gain("holdout", r2) - gain("utility", v)
    _, lo, hi = t_ci(bias - gain("shared", s))  # what is left is E2's noise: mean zero
    assert lo < 0 < hi
    assert np.mean(gain("shared", s)) > 0.5 and t_ci(bias)[1] > 0.5  # a bias of that size, shown


def test_median_of_members_keeps_the_identification_under_a_skewed_heavy_error():
    # pareto(1.5) held-out errors: mean finite, variance infinite, strongly skewed. The per-sample
    # median of 5 (tail index 4.5) gives an unbiased estimate whose interval covers; a median of
    # prompt means would be biased (skewed noise).
    v, x1, rng = _pool(P=64, N=2048, x=stats.norm())
    exact = float(bon_utility(stats.norm(), stats.norm(), [8])[0])
    hits, ests = 0, []
    for rep in range(20):
        r = np.random.default_rng([7, rep])
        x2 = combine(stats.pareto(1.5).rvs((5, *v.shape), random_state=r), "median")
        est = best_of_n(v + x1, 8, holdout=v + x2)
        m, lo, hi = t_ci(est["holdout"] - (v + x2).mean(1))
        hits += lo < exact < hi
        ests.append(m)
    assert abs(np.mean(ests) - exact) < 0.02 and hits >= 17, (np.mean(ests), exact, hits)


def test_combine_rejects_an_unknown_rule():
    with pytest.raises(ValueError, match="median, mean"):
        combine(np.zeros((2, 3)), "trimmed")


# ---------------------------------------------------------------------------------------------
# The estimated labels: gold's rule on the held-out gain, and nothing of gold
# ---------------------------------------------------------------------------------------------
def _rows(gains_h, gains_u, kl=None):
    n = len(gains_h)
    kl = kl if kl is not None else np.arange(n, dtype=float)
    rows = []
    for i in range(n):
        rows.append(
            {
                "point_id": f"p{i}",
                "algo": "bon",
                "x_name": "n",
                "x": float(2**i),
                "error_law": "e",
                M.KL: kl[i],
                M.GAIN_PROXY: float(i),
                M.lo(M.GAIN_PROXY): i - 0.1,
                M.hi(M.GAIN_PROXY): i + 0.1,
                M.GAIN_UTILITY: gains_u[i],
                M.lo(M.GAIN_UTILITY): gains_u[i] - 0.05,
                M.hi(M.GAIN_UTILITY): gains_u[i] + 0.05,
                M.GAIN_HOLDOUT: gains_h[i],
                M.lo(M.GAIN_HOLDOUT): gains_h[i] - 0.05,
                M.hi(M.GAIN_HOLDOUT): gains_h[i] + 0.05,
                M.HOLDOUT_SOURCE: "independent 5 x t3",
            }
        )
    return pd.DataFrame(rows)


def test_estimated_labels_follow_the_heldout_gain_and_read_no_gold():
    h = [0.0, 0.5, 1.0, 0.6, 0.3]
    df = _rows(h, [0.0, 0.5, 1.0, 0.6, 0.3])
    est = estimated_labels(df)
    assert list(est["verdict"]) == [
        "est:baseline",
        "est:improving",
        "est:improving",
        "est:over-optimized",
        "est:over-optimized",
    ]
    assert est.loc[est["peak"].astype(bool), "x"].tolist() == [4.0]
    # gold changed in every way: the estimate does not move
    other = _rows(h, [0.0, 2.0, 0.1, 3.0, 9.0]).assign(**{M.POOL_DEPENDENT: True, M.BASE_GAIN2: 5.0})
    assert list(estimated_labels(other)["verdict"]) == list(est["verdict"])
    assert all(v.startswith(EST) for v in est["verdict"])


def test_agreement_counts_resolved_points_only():
    a = agreement(
        pd.Series(["improving", "over-optimized", "unresolved", "over-optimized"]),
        pd.Series(["est:improving", "est:improving", "est:over-optimized", "est:unresolved"]),
    )
    assert (a.points, a.resolved, a.agree, a.est_unresolved) == (4, 2, 1, 1)


# ---------------------------------------------------------------------------------------------
# The error's tail without gold: the utility cancels in proxy - holdout
# ---------------------------------------------------------------------------------------------
def test_error_tail_sees_the_error_not_a_heavy_utility():
    from goodhart.eval.tails import tail_verdict

    rng = np.random.default_rng(3)
    n = (16, 4096)
    heavy_v, light_x = stats.t(2).rvs(n, random_state=rng), stats.norm(scale=0.5).rvs(n, random_state=rng)
    x2 = combine(stats.norm(scale=0.5).rvs((5, *n), random_state=rng), "median")
    # the proxy alone reads heavy (a single proxy cannot tell whose tail it is) ...
    assert tail_verdict((heavy_v + light_x).ravel()).verdict == "heavy"
    # ... its difference with a held-out proxy does not: the utility cancels
    assert error_tail(heavy_v + light_x, heavy_v + x2).verdict != "heavy"
    light_v, heavy_x = stats.norm().rvs(n, random_state=rng), stats.pareto(1.5).rvs(n, random_state=rng)
    x2 = combine(stats.pareto(1.5).rvs((5, *n), random_state=rng), "median")
    assert error_tail(light_v + heavy_x, light_v + x2).verdict == "heavy"


# ---------------------------------------------------------------------------------------------
# The config key and the pipeline's held-out scores
# ---------------------------------------------------------------------------------------------
def test_config_shorthands_and_errors():
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.errors import ConfigError

    h = load_config(None, ["eval.holdout=independent", "eval.holdout.k=3"]).eval.holdout
    assert (h.source, h.k, h.how) == ("independent", 3, "median")
    # the default chosen on the dev families (docs/holdout.md): the median of 9 draws
    assert load_config(None, ["eval.holdout=independent"]).eval.holdout.k == 9
    h = load_config(None, ["eval.holdout={type: hf, path: rm_b}"]).eval.holdout
    assert (h.source, h.how, h.rewards[0].path) == ("rewards", "mean", "rm_b")
    assert load_config(None, []).eval.holdout is None
    bad = [
        (["reward=distributional", "eval.holdout={type: hf, path: x}"], "no texts to score"),
        (["reward={type: hf, path: x}", "utility=sentiment", "eval.holdout=independent"], "no error law"),
        (["eval.holdout.shared=0.5", "reward.ensemble.k=3"], "without an ensemble"),
        (["eval.holdout.salt=member"], "ensemble member"),
        (["eval.holdout.k=0"], "eval.holdout.k"),
    ]
    for ov, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            load_config(None, ov)


def _ctx(tmp_path, *overrides):
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.config.load import load_config

    cfg = load_config(
        None, ["reward=distributional", "sampling.n=2048", "prompts.n_eval=16", "eval.holdout=independent", *overrides]
    )
    return PointContext(cfg, tmp_path, progress=False)


def test_distributional_heldout_draws_are_independent_of_the_proxy_and_reproducible(tmp_path):
    ctx = _ctx(tmp_path, 'reward.error="student_t(df=3)"')
    pool, ho = ctx.pool(), ctx.holdout()
    x2 = ho.values - pool.utility
    tol = 4 / np.sqrt(x2.size)  # 4 standard errors of a correlation of independent draws
    assert abs(np.corrcoef(x2.ravel(), pool.error.ravel())[0, 1]) < tol
    assert abs(np.corrcoef(x2.ravel(), pool.utility.ravel())[0, 1]) < tol
    assert np.array_equal(_ctx(tmp_path, 'reward.error="student_t(df=3)"').holdout().values, ho.values)
    other = _ctx(tmp_path, 'reward.error="student_t(df=3)"', "eval.holdout.salt=other").holdout().values
    assert abs(np.corrcoef((other - pool.utility).ravel(), x2.ravel())[0, 1]) < tol
    # k = 1: the held-out error has the proxy error's own law
    one = _ctx(tmp_path, 'reward.error="student_t(df=3)"', "eval.holdout.k=1").holdout().values - pool.utility
    assert stats.ks_2samp(one.ravel()[:20000], pool.error.ravel()[:20000]).pvalue > 0.01


def test_shared_knob_biases_the_pipelines_estimate_by_shared_times_the_error_gain(tmp_path):
    from goodhart.pipeline.optimizers import bon

    ctx = _ctx(tmp_path, "reward.error=gaussian", "eval.holdout.shared=0.5", "algo=bon", "algo.n=16")
    row = bon.run(ctx).row
    bias = row[M.GAIN_HOLDOUT] - row[M.GAIN_UTILITY]
    expect = 0.5 * (row[M.GAIN_PROXY] - row[M.GAIN_UTILITY])
    assert expect > 0.4 and abs(bias - expect) < 0.1 * expect, (bias, expect)
    clean = bon.run(_ctx(tmp_path, "reward.error=gaussian", "algo=bon", "algo.n=16")).row
    assert abs(clean[M.GAIN_HOLDOUT] - clean[M.GAIN_UTILITY]) < 0.05


def test_text_heldout_members_are_other_hash_fields_of_the_same_law():
    from goodhart.pipeline.base.holdout import sample_holdout
    from goodhart.pipeline.base.scoring import synthetic_error
    from goodhart.pipeline.config.load import load_config

    cfg = load_config(None, ["reward=pareto", "eval.holdout=independent", "eval.holdout.k=1"])
    prompts = [f"p{i % 7}" for i in range(20000)]
    comps = [f"completion number {i}" for i in range(20000)]
    x1 = synthetic_error(cfg.reward.error).score(prompts, comps)
    v = np.zeros(len(comps))
    x2 = sample_holdout(cfg, prompts, comps, v, x1)
    assert np.array_equal(x2, sample_holdout(cfg, prompts, comps, v, x1))  # a function of the text
    assert stats.spearmanr(x1, x2).statistic == pytest.approx(0, abs=0.03)
    assert stats.ks_2samp(x1, x2).pvalue > 0.01  # the same law
    ens = synthetic_error(cfg.reward.error.model_copy(update={"salt": "goodhart#member1"})).score(prompts, comps)
    assert not np.allclose(ens, x2)  # never an ensemble member's field


# ---------------------------------------------------------------------------------------------
# Text pools and trained policies: a held-out proxy equal to the utility reads gold exactly
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tilt", "bon", "ppo"])
def test_a_heldout_proxy_without_error_reads_the_utility_gain_exactly(small_model_dir, tmp_path, kind):
    # `eval.holdout: {type: sentiment}` is the utility itself (X2 = 0): on the text pool (tilt,
    # best-of-n) and on a trained policy's held-out samples (ppo) its gain is gold's, to the digit.
    from tiny_runs import run_direct, tiny_cfg

    from goodhart.pipeline.config.load import configs_dir, load_config

    ho = "eval.holdout={type: sentiment}"
    if kind == "ppo":
        cfg = tiny_cfg(small_model_dir, "ppo", "reward=gaussian", "algo.steps=1", ho)
    else:
        pool = ["prompts.n_eval=4", "sampling.n=16", "sampling.max_new_tokens=8", "tracking.enabled=false"]
        knob = ["algo.n=4"] if kind == "bon" else []
        model = ["model.name=path", f"model.path={small_model_dir}"]
        cfg = load_config(
            str(configs_dir() / "base.yaml"), [*model, *pool, "reward=gaussian", f"algo={kind}", *knob, ho]
        )
    row = run_direct(cfg, tmp_path / kind)[0].row
    assert row[M.GAIN_HOLDOUT] == pytest.approx(row[M.GAIN_UTILITY], abs=1e-12)
    assert row[M.HOLDOUT_ERROR_GAIN] == pytest.approx(row[M.GAIN_PROXY] - row[M.GAIN_UTILITY], abs=1e-12)


def test_independent_heldout_on_a_trained_policy_is_its_own_hash_field(small_model_dir, tmp_path):
    from tiny_runs import run_direct, tiny_cfg

    cfg = tiny_cfg(small_model_dir, "ppo", "reward=pareto", "algo.steps=1", "eval.holdout=independent")
    row = run_direct(cfg, tmp_path / "p")[0].row
    assert np.isfinite(row[M.GAIN_HOLDOUT]) and row[M.lo(M.GAIN_HOLDOUT)] <= row[M.GAIN_HOLDOUT]
    assert row[M.GAIN_HOLDOUT] != row[M.GAIN_UTILITY]  # another error field, not the utility


# ---------------------------------------------------------------------------------------------
# `goodhart analyze`: holdout columns
# ---------------------------------------------------------------------------------------------
def _samples(P=8, N=128, ns=(4, 32, 128), seed=0):
    """A per-sample table: base rows, and best-of-n policies drawn afresh by proxy = V + pareto
    error; three held-out columns V + independent pareto draws."""
    rng = np.random.default_rng(seed)
    rows = []

    def draw(size):
        v = rng.normal(size=size)
        x1 = rng.pareto(1.5, size=size)
        h = {f"holdout_{j}": v + rng.pareto(1.5, size=size) for j in range(3)}
        return v, v + x1, h

    for p in range(P):
        v, r, h = draw(N)
        rows += [
            {"point": "base", "prompt": f"p{p}", "proxy": r[i], "utility": v[i], "kl": 0.0, **{k: h[k][i] for k in h}}
            for i in range(N)
        ]
        for n in ns:
            v, r, h = draw((32, n))
            best = np.argmax(r, axis=1)
            kl = np.log(n) - (n - 1) / n
            for i, b in enumerate(best):
                rows.append(
                    {
                        "point": f"bon{n}",
                        "prompt": f"p{p}",
                        "proxy": r[i, b],
                        "utility": v[i, b],
                        "kl": kl,
                        "algo": "bon",
                        "x_name": "n",
                        "x": n,
                        **{k: h[k][i, b] for k in h},
                    }
                )
    return pd.DataFrame(rows)


def test_analyze_reads_holdout_columns_with_and_without_gold(tmp_path):
    from goodhart.pipeline.report.analyze import analyze

    df = _samples()
    res = analyze(df, tmp_path / "gold", holdout_combine="median")
    lab = res.labelled
    assert lab["est_verdict"].notna().all() and lab[M.GAIN_HOLDOUT].notna().all()
    assert "## Held-out estimate (no gold)" in (tmp_path / "gold" / "report" / "report.md").read_text()
    nogold = analyze(df.drop(columns="utility"), tmp_path / "nogold", holdout_combine="median")
    assert nogold.report is None and nogold.estimate is not None
    assert list(nogold.labelled["est_verdict"]) == list(lab.sort_values(M.KL)["est_verdict"])
    text = (tmp_path / "nogold" / "report" / "report.md").read_text()
    assert "Held-out estimate (no gold)" in text and "Assumption" in text and "proxy - holdout is" in text
    assert text.index("Held-out estimate") < text.index("single-proxy alarm")  # the headline, the alarm after


def test_analyze_rejects_a_bad_holdout_cell(tmp_path):
    from goodhart.pipeline.report.analyze import analyze
    from goodhart.pipeline.report.samples import SamplesError

    df = _samples(P=2, N=8, ns=(2,)).astype({"holdout_1": object})
    df.loc[3, "holdout_1"] = "n/a"
    with pytest.raises(SamplesError, match="row 4, column 'holdout_1': expected a number"):
        analyze(df, tmp_path / "bad")


# ---------------------------------------------------------------------------------------------
# Exact truth for the bench, and the bench itself (small)
# ---------------------------------------------------------------------------------------------
def test_exact_best_of_n_in_quantile_form_against_closed_form_and_monte_carlo():
    """eval/exact.py bon_gain, the bench's yardstick: the Gaussian closed form to 1e-3 up to n = 4096,
    and Monte Carlo where a grid over the density fails -- a uniform error (its density steps: the
    grid form was off by 10 standard errors at n = 128) and a heavy lognormal utility."""
    from goodhart.eval.exact import bon_gain, bon_utility, expected_max_normal

    g = bon_gain(stats.norm(), stats.norm(), [2, 128, 4096])
    assert np.allclose(g, [expected_max_normal(n) / np.sqrt(2) for n in (2, 128, 4096)], atol=1e-3)
    rng = np.random.default_rng(0)
    for v, x in ((stats.gumbel_r(), stats.uniform(scale=4)), (stats.lognorm(0.5), stats.norm())):
        ex = bon_gain(v, x, [8, 64])
        for n, e in zip((8, 64), ex):
            m = 400_000 // n
            V, X = v.rvs((m, n), random_state=rng), x.rvs((m, n), random_state=rng)
            vv = V[np.arange(m), np.argmax(V + X, 1)] - v.mean()
            assert abs(vv.mean() - e) < 3 * vv.std() / np.sqrt(m), (v.dist.name, n, vv.mean(), e)
    grid = bon_utility(stats.gumbel_r(), stats.uniform(scale=4), [1, 64])
    assert abs((grid[1] - grid[0]) - bon_gain(stats.gumbel_r(), stats.uniform(scale=4), [64])[0]) > 0.05  # why


def _bench_file(tmp_path, branches, pool=2048):
    import yaml

    from goodhart.pipeline.config.load import configs_dir

    spec = {
        "name": "hb",
        "base": str(configs_dir() / "base.yaml"),
        "set": {
            "reward": "distributional",
            "prompts.n_eval": 8,
            "sampling.n": pool,
            "eval.holdout": "independent",
            "tracking.enabled": False,
        },
        "branches": branches,
    }
    f = tmp_path / "hb.yaml"
    f.write_text(yaml.safe_dump(spec))
    return f


def _run_bench(main, f: Path, tmp_path: Path) -> int:
    """`goodhart holdout-bench` on family file f, its points written to tmp_path/p.csv."""
    return main(
        [
            "holdout-bench",
            "--file",
            str(f),
            "--out",
            str(tmp_path / "runs"),
            "--quiet",
            "--csv",
            str(tmp_path / "p.csv"),
        ]
    )


def test_holdout_bench_on_a_small_family(tmp_path, capsys):
    """`goodhart holdout-bench --file`: a sweep file's branches as families, run and scored against
    exact truth; `holdout-eval` scores the finished sweep the same way (the real halves: docs/holdout.md)."""
    from goodhart.pipeline.cli.main import main

    f = _bench_file(
        tmp_path,
        [
            {
                "name": "light",
                "set": {"algo": "bon"},
                "grid": {"reward.error": ["pareto(alpha=1.5)"], "algo.n": [1, 2, 8, 64, 256]},
            }
        ],
        pool=1024,
    )
    assert _run_bench(main, f, tmp_path) == 0
    assert "worst family" in capsys.readouterr().out
    pts = pd.read_csv(tmp_path / "p.csv")
    assert (pts["verdict"] == "over-optimized").any()  # the exact pareto(1.5) curve turns after n = 2-8
    res = pts[(pts["verdict"] != "unresolved") & (pts["est_verdict"] != "est:unresolved")]
    assert len(res) >= 3 and (res["est_verdict"].str.removeprefix("est:") == res["verdict"]).all()
    assert main(["holdout-eval", str(tmp_path / "runs" / "hb")]) == 0
    assert "peaks within 1 knob" in capsys.readouterr().out


@pytest.mark.slow
def test_holdout_bench_on_small_families(tmp_path, capsys):
    """Three small families: a light and a heavy error, a heavy utility beside a light error, a
    Gaussian tilt; the estimate agrees with exact truth and never calls the heavy utility over-optimized."""
    from goodhart.pipeline.cli.main import main

    bon = {"algo.n": [1, 2, 8, 32, 128, 512]}
    f = _bench_file(
        tmp_path,
        [
            {
                "name": "light",
                "set": {"algo": "bon"},
                "grid": {"reward.error": ["gaussian", "pareto(alpha=1.5)"], **bon},
            },
            {
                "name": "heavy-utility",
                "set": {"algo": "bon", "reward.utility": "lognormal(sigma=0.5)"},
                "grid": {"reward.error": ["gaussian"], **bon},
            },
            {"name": "tilt", "set": {"algo": "tilt", "reward.error": "gaussian"}, "grid": {"algo.kl.coef": [4, 2, 1]}},
        ],
    )
    assert _run_bench(main, f, tmp_path) == 0
    out = capsys.readouterr().out
    assert "worst family" in out and "heavy-utility" in out and "verdict rule" in out
    pts = pd.read_csv(tmp_path / "p.csv")
    assert set(pts["family"]) == {"light", "heavy-utility", "tilt"}
    res = pts[(pts["verdict"] != "unresolved") & (pts["est_verdict"] != "est:unresolved")]
    assert (res["est_verdict"].str.removeprefix("est:") == res["verdict"]).mean() >= 0.9
    heavy = pts[pts["family"] == "heavy-utility"]
    assert not heavy["est_verdict"].isin(["est:over-optimized", "est:catastrophic"]).any()


def test_coverage_table_and_why_k_is_nine():
    """holdout-bench --coverage, small: the median of 9 Levy held-out errors gives intervals a
    hundred times narrower than one draw (its variance is finite: tail index 2.5, against 0.5)."""
    from goodhart.pipeline.report.holdout_bench import coverage

    df = coverage(
        seeds=3, prompts=8, pool=512, ns=(2, 16), laws=("gaussian", "levy"), settings=((1, "median"), (9, "median"))
    )
    assert len(df) == 2 * 2 * 2 and df["coverage"].between(0, 1).all()
    w = df.set_index(["error", "k", "n"])["width"]
    assert w[("levy", 9, 16)] * 100 < w[("levy", 1, 16)]
    assert w[("gaussian", 9, 16)] < w[("gaussian", 1, 16)]
