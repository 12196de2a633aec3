"""Overrides behave: every form the README shows works, and a later dotted key never silently
replaces an earlier law."""

import pytest

from goodhart.pipeline.config.load import load_config
from goodhart.pipeline.errors import ConfigError


def test_a_dotted_key_keeps_the_law_it_refines():
    c = load_config(None, ["reward=distributional", "reward.error=student_t(df=3)", "reward.error.scale=0.5"])
    assert (c.reward.error.name, c.reward.error.df, c.reward.error.scale) == ("student_t", 3.0, 0.5)
    # Order on the command line does not matter (parents apply before children).
    c = load_config(None, ["reward.error.scale=0.5", "reward.error=student_t(df=3)", "reward=distributional"])
    assert (c.reward.error.name, c.reward.error.scale) == ("student_t", 0.5)
    # The same inside a synthetic reward's error law.
    c = load_config(None, ["reward=pareto", "reward.error.law=student_t(df=3)", "reward.error.law.scale=0.5"])
    assert (c.reward.error.law.name, c.reward.error.law.df, c.reward.error.law.scale) == ("student_t", 3.0, 0.5)
    c = load_config(None, ["reward=pareto", "reward.error.law.scale=0.7"])
    assert (c.reward.error.law.name, c.reward.error.law.alpha, c.reward.error.law.scale) == ("pareto", 1.5, 0.7)


def test_readme_utility_shorthand_and_its_fields():
    c = load_config(None, ["reward=distributional", "reward.utility=gaussian(scale=0.5)"])
    assert (c.reward.utility.name, c.reward.utility.scale) == ("gaussian", 0.5)
    c = load_config(None, ["reward=distributional", "reward.utility.scale=2"])
    assert c.reward.utility.scale == 2.0
    c = load_config(None, ["reward=distributional", "reward.utility.loc=1"])
    assert (c.reward.utility.name, c.reward.utility.loc) == ("gaussian", 1.0)


def test_descending_into_a_scalar_is_an_error_not_a_silent_replacement():
    with pytest.raises(ConfigError, match="'seed' is 3, not a mapping"):
        load_config(None, ["seed=3", "seed.x=1"])


@pytest.mark.parametrize("reward", ["{type: hf, path: /some/rm}", "{type: callable, target: 'pkg.mod:f'}"])
def test_a_learned_or_callable_proxy_needs_a_utility(reward):
    with pytest.raises(ConfigError, match="has no utility.*utility: same"):
        load_config(None, [f"reward={reward}"])
    c = load_config(None, [f"reward={reward}", "utility=same"])
    assert c.utility == c.reward
    c = load_config(None, [f"reward={reward}", "utility=sentiment"])
    assert c.utility.type == "sentiment"
