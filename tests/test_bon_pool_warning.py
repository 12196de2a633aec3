"""Best-of-n from more than a quarter of the pool says so (issue 19: n = N ran without a word)."""

import warnings

import numpy as np
import pytest

from goodhart.rewards.distributional import draw
from goodhart.rewards.laws import Law


def run_bon(n: int, N: int):
    from goodhart.pipeline.base.context import PointContext
    from goodhart.pipeline.base.pool import Pool
    from goodhart.pipeline.config.load import load_config
    from goodhart.pipeline.optimizers import bon

    a = draw(Law("gaussian"), Law("gaussian"), 16, N, 0)
    cfg = load_config(None, ["reward=distributional", "algo=bon", f"algo.n={n}", f"sampling.n={N}"])
    ctx = PointContext(cfg, None, progress=False)  # type: ignore[arg-type]
    ctx._pool = Pool(None, None, a["proxy"], a["utility"], a["error"], "p")
    return bon.run(ctx).row


def test_best_of_n_above_a_quarter_of_the_pool_warns():
    from goodhart.pipeline.optimizers.bon import WidePoolWarning

    with pytest.warns(WidePoolWarning, match=r"n=64 from a pool of N=64 .*n > N/4"):
        wide = run_bon(64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", WidePoolWarning)
        narrow = run_bon(16, 64)  # n = N/4: no warning
    half = lambda r: r["gain/utility/hi"] - r["gain/utility/lo"]  # noqa: E731
    assert half(wide) > half(narrow) and np.isfinite(half(wide))
