"""Rewards: determinism, calibration (KS), plug-ins, composition, and loud failures."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from goodhart.pipeline.base.scoring import Scorer, build_reward
from goodhart.pipeline.config.load import load_config
from goodhart.rewards.base import FunctionReward, RewardError
from goodhart.rewards.compose import Clipped, WeightedSum
from goodhart.rewards.gold import Keyword, Length, Sentiment
from goodhart.rewards.laws import Law
from goodhart.rewards.plugins import callable_reward, plugin_reward
from goodhart.rewards.synthetic import SyntheticError

RNG = np.random.default_rng(0)
WORDS = "the movie was good bad awful great then and but a film phone food".split()


def random_texts(n: int, seed: int = 0, then_rate: float = 0.0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=rng.integers(3, 12)))
        words += ["then"] * int(rng.poisson(then_rate))
        rng.shuffle(words)
        out.append(" ".join(words) + f" #{i}")  # distinct texts
    return out


def ks_p(x, law: Law) -> float:
    return stats.kstest(x, law.cdf).pvalue


# ---- the synthetic error ---------------------------------------------------------------------
def test_error_is_a_deterministic_function_of_the_text():
    err = SyntheticError(Law("pareto", alpha=1.5))
    texts = random_texts(50)
    a = err.score([""] * 50, texts)
    b = err.score([""] * 50, list(reversed(texts)))[::-1]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, SyntheticError(Law("pareto", alpha=1.5), salt="other").score([""] * 50, texts))


def test_error_is_identical_across_processes():
    texts = random_texts(20)
    here = SyntheticError(Law("student_t", df=2)).score([""] * 20, texts)
    code = textwrap.dedent(f"""
        from goodhart.rewards.synthetic import SyntheticError; from goodhart.rewards.laws import Law
        import json; texts = json.loads({__import__("json").dumps(__import__("json").dumps(texts))})
        print(json.dumps(SyntheticError(Law("student_t", df=2)).score([""] * len(texts), texts).tolist()))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "PYTHONHASHSEED": "123"},
    )
    assert np.array_equal(here, np.array(__import__("json").loads(out.stdout)))


@pytest.mark.parametrize(
    "law",
    [
        Law("gaussian", scale=0.3),
        Law("student_t", df=2),
        Law("lognormal", sigma=1.5),
        Law("pareto", alpha=1.5, center=True),
        Law("levy"),
    ],
)
def test_independent_error_has_exactly_the_named_law(law):
    x = SyntheticError(law).score([""] * 4000, random_texts(4000, seed=1))
    assert ks_p(x, law) > 0.01
    wrong = (
        Law("gaussian", scale=float(np.std(x)) or 1.0, loc=float(np.median(x)))
        if law.name != "gaussian"
        else Law("student_t", df=1, scale=0.3)
    )
    assert ks_p(x, wrong) < 1e-3


@pytest.mark.parametrize(
    "law",
    [
        Law("gaussian"),
        Law("student_t", df=2.5),
        Law("lognormal", sigma=1.5),
        Law("pareto", alpha=1.2),
        Law("levy"),
        Law("exponential"),
        Law("uniform"),
        Law("gumbel"),
    ],
    ids=lambda law: law.name,
)
def test_draws_are_scipy_isf_bit_for_bit_without_importing_scipy_stats(law):
    # Law.from_survival evaluates each law's scipy.stats _isf expression itself (a sweep worker that
    # only draws then never imports scipy.stats): the same doubles, into the far tail, and the
    # support's ends and bad values as scipy gives them
    q = np.concatenate([np.random.default_rng(0).random(200_000), 10.0 ** -np.arange(1, 300, 7.0)])
    assert np.array_equal(law.from_survival(q), law.standard.isf(q))
    edges = np.array([0.0, 1.0, 0.5, np.nan, -1.0])
    assert np.array_equal(law.from_survival(edges), law.standard.isf(edges), equal_nan=True)
    code = f"import numpy as np, sys; from goodhart.rewards.laws import Law; Law({law.name!r}).sample(8, np.random.default_rng(0)); print('scipy.stats' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_independent_error_is_uncorrelated_with_utility():
    texts = random_texts(4000, seed=2)
    v = Sentiment().score([""] * 4000, texts)
    x = SyntheticError(Law("gaussian")).score([""] * 4000, texts)
    assert abs(np.corrcoef(v, x)[0, 1]) < 0.05


@pytest.mark.parametrize("law", [Law("gaussian"), Law("pareto", alpha=1.5)])
def test_feature_error_is_calibrated_on_fresh_base_samples_and_climbable(law):
    err = SyntheticError(law, mode="feature", pattern="then")
    err.fit(random_texts(4000, seed=3, then_rate=0.3))
    fresh = random_texts(4000, seed=4, then_rate=0.3)
    x = err.score([""] * 4000, fresh)
    assert ks_p(x, law) > 0.01
    assert ks_p(x, Law("gaussian", loc=5.0)) < 1e-6
    # Monotone in the feature, and unbounded beyond anything the base showed.
    ladder = [" ".join(["then"] * k) + " film" for k in range(0, 12)]
    ex = err.score([""] * len(ladder), ladder)
    assert np.all(np.diff(ex) > 0)
    assert ex[-1] > np.max(x)


def test_feature_error_state_round_trips():
    base = random_texts(500, seed=5, then_rate=0.5)
    a = SyntheticError(Law("lognormal"), mode="feature").fit(base)
    b = SyntheticError(Law("lognormal"), mode="feature").load_state(a.state())
    t = random_texts(30, seed=6, then_rate=1.0)
    assert np.array_equal(a.score([""] * 30, t), b.score([""] * 30, t))


def test_feature_error_refuses_to_score_before_calibration():
    with pytest.raises(RuntimeError, match="calibrate"):
        SyntheticError(Law("gaussian"), mode="feature").score(["p"], ["then"])


# ---- gold utilities, composition, loud failures --------------------------------------------
def test_gold_utilities():
    p, c = ["", "", ""], ["what a wonderful great day", "terrible awful mess", "then then a then"]
    s = Sentiment().score(p, c)
    assert s[0] > 0.5 and s[1] < -0.5
    assert Length().score(p, c).tolist() == [5, 3, 4]
    assert Keyword(["then"]).score(p, c).tolist() == [0, 0, 3]


def test_sum_and_clip():
    p, c = ["", ""], ["a b c", "a"]
    total = WeightedSum([Length(), Length()], [2.0, -0.5]).score(p, c)
    assert total.tolist() == [4.5, 1.5]
    clipped = Clipped(Length(), None, 2.0)
    assert clipped.score(p, c).tolist() == [2.0, 1.0] and clipped.clipped_fraction == 0.5


@pytest.mark.parametrize(
    "bad,match",
    [
        ([1.0, float("nan")], "returned nan for example 1"),
        ([1.0, float("inf")], "returned inf for example 1"),
        ([1.0], "returned 1 scores for 2 completions"),
    ],
)
def test_bad_reward_output_names_reward_and_example(bad, match):
    r = FunctionReward(lambda prompts, completions: bad, name="flaky")
    with pytest.raises(RewardError, match=match) as e:
        r.score(["p1", "p2"], ["c1", "c2"])
    assert "'flaky'" in str(e.value)


# ---- plug-ins ----------------------------------------------------------------------------------
def test_callable_plugin(tmp_path, monkeypatch):
    (tmp_path / "myrewards.py").write_text(
        "def shout(prompts, completions, bonus=0.0):\n    return [c.count('!') + bonus for c in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    r = callable_reward("myrewards:shout", {"bonus": 0.5})
    assert r.score(["", ""], ["hi!", "no"]).tolist() == [1.5, 0.5]
    with pytest.raises(RewardError, match="cannot import module 'nosuchmod'"):
        callable_reward("nosuchmod:f")
    with pytest.raises(RewardError, match="has no attribute 'nope'"):
        callable_reward("myrewards:nope")


def test_entry_point_plugin():
    r = plugin_reward("word_count")
    assert r.score(["", ""], ["one two", "three"]).tolist() == [2, 1]
    with pytest.raises(RewardError, match="no reward plug-in named 'missing'"):
        plugin_reward("missing")


def test_hf_checkpoint_plugin_as_utility_under_synthetic_error(small_model_dir, tmp_path):
    from tiny_runs import tiny_classifier

    tiny_classifier(small_model_dir, tmp_path / "rm")
    cfg = load_config(
        None, [f"reward.utility={{type: hf, path: {tmp_path / 'rm'}}}", "reward.error.law=pareto(alpha=1.5)"]
    )
    scorer = Scorer(cfg)
    prompts, comps = ["the movie", "the movie", "my phone"], [" was great.", " was awful.", " broke then."]
    parts = scorer.components(prompts, comps)
    direct = build_reward(cfg.reward.utility).score(prompts, comps)
    assert np.allclose(parts["utility"], direct) and np.allclose(parts["proxy"], parts["utility"] + parts["error"])
    assert len(set(np.round(direct, 6))) == 3
