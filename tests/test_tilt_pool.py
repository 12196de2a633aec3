"""Tilt on heavy tails says what it is: nested sub-pools (N/4, N/2, N) expose an estimate that
depends on the pool size (no population optimum), in the results table and in report.md."""

import pandas as pd
import pytest
import yaml

from goodhart.eval import metrics as M


def test_heavy_tilt_is_pool_dependent_and_light_tilt_is_not(in_tmp, capsys):
    from goodhart.pipeline.cli.main import main
    from goodhart.pipeline.config.load import configs_dir

    spec = {
        "name": "pool",
        "base": str(configs_dir() / "base.yaml"),
        "set": {"reward": "distributional", "sampling.n": 8192, "prompts.n_eval": 32, "algo": "tilt"},
        "grid": {"reward.error": ["gaussian", "student_t(df=2)"], "algo.kl.coef": [3.0, 1.0]},
    }
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", "s.yaml", "--quiet"]) == 0
    out = capsys.readouterr().out
    df = pd.read_csv(in_tmp / "runs" / "pool" / "results.csv")
    dep = {(r["error_law"], r["x"]): r[M.POOL_DEPENDENT] for _, r in df.iterrows()}
    gauss = df[df["error_law"].str.startswith("gaussian")]
    heavy = df[df["error_law"].str.startswith("student_t")]
    # Gaussian V + X at beta=3: ESS in the thousands, the estimate does not move with N.
    assert not gauss[gauss["x"] == 3.0][M.POOL_DEPENDENT].iloc[0], dep
    # student_t(2) at beta=1: the weights chase the largest error in the pool.
    assert heavy[heavy["x"] == 1.0][M.POOL_DEPENDENT].iloc[0], dep
    assert "pool-dependent" in out
    assert main(["report", "runs/pool", "--no-mlflow"]) == 0
    md = (in_tmp / "runs" / "pool" / "report" / "report.md").read_text()
    assert "pool-dependent" in md.split("### Every point")[1]


def test_the_drift_sign_test_is_the_exact_binomial_tail():
    # P(X >= k), X ~ Binomial(n, 1/2), by brute force over all 2^n sign patterns (n <= 12), and
    # against scipy's binom.sf beyond that; the lower tail by symmetry
    import itertools

    from scipy import stats

    from goodhart.eval.bootstrap import sign_tail

    for n in range(1, 13):
        counts = [sum(s) for s in itertools.product((0, 1), repeat=n)]
        for k in range(n + 1):
            assert sign_tail(k, n) == sum(c >= k for c in counts) / 2**n
    for n, k in ((32, 25), (200, 130), (6500, 3400)):
        assert sign_tail(k, n) == pytest.approx(stats.binom.sf(k - 1, n, 0.5), rel=1e-12)
