"""Config: composition, overrides, and one clear line for every kind of user mistake."""

import subprocess
import sys

import pytest
import yaml

from goodhart.pipeline.config.load import configs_dir, load_config
from goodhart.pipeline.config.schema import BonConfig, SyntheticReward
from goodhart.pipeline.errors import ConfigError


def _err(*overrides, path=None) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, list(overrides))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_defaults_compose_from_files():
    cfg = load_config(configs_dir() / "base.yaml")
    assert cfg.model.name == "tiny"
    assert isinstance(cfg.reward, SyntheticReward) and cfg.reward.error.law.name == "gaussian"


def test_group_reference_and_nested_override():
    cfg = load_config(
        configs_dir() / "base.yaml", ["reward=pareto", "reward.error.law.alpha=2.5", "algo=bon", "algo.n=8"]
    )
    assert cfg.reward.error.law.name == "pareto" and cfg.reward.error.law.alpha == 2.5
    assert isinstance(cfg.algo, BonConfig) and cfg.algo.n == 8


def test_override_order_does_not_matter():
    a = load_config(None, ["algo.n=8", "algo=bon"])
    b = load_config(None, ["algo=bon", "algo.n=8"])
    assert a == b


def test_law_shorthand():
    cfg = load_config(None, ["reward.error.law=student_t(df=3, scale=0.5)"])
    assert (cfg.reward.error.law.name, cfg.reward.error.law.df, cfg.reward.error.law.scale) == ("student_t", 3, 0.5)


def test_misspelt_key_suggests_the_right_one():
    assert "unknown key 'reward.error.law.alhpa' (did you mean 'reward.error.law.alpha'?)" in _err(
        "reward.error.law.alhpa=2"
    )
    assert "did you mean 'sampling'" in _err("samplng.n=3")


def test_wrong_type_names_key_value_and_expectation():
    msg = _err("sampling.n=lots")
    assert "sampling.n = 'lots'" in msg and "integer" in msg


def test_out_of_range_value():
    msg = _err("reward.error.law.scale=-1")
    assert "reward.error.law.scale = -1" in msg and "greater than 0" in msg


def test_bad_union_tag_lists_the_choices():
    assert "expected one of" in _err("reward.type=sentimnt") and "'sentiment'" in _err("reward.type=sentimnt")


def test_best_of_n_larger_than_pool_is_refused():
    assert "sampling.n=16" in _err("algo=bon", "algo.n=64", "sampling.n=16")


def test_missing_group_file_and_bad_yaml(tmp_path):
    assert "'nosuch' is not a config file in configs/reward/" in _err("reward=nosuch")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    assert "not valid YAML" in _err(path=bad)
    assert "config file not found" in _err(path=tmp_path / "missing.yaml")


def test_base_chain(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"base: {configs_dir() / 'base.yaml'}\nseed: 7\nreward: student_t\n")
    cfg = load_config(child)
    assert cfg.seed == 7 and cfg.reward.error.law.name == "student_t" and cfg.sampling.n == 256


def test_cli_config_show_and_one_line_error():
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "goodhart.pipeline.cli",
            "config",
            "show",
            str(configs_dir() / "base.yaml"),
            "algo.kl.coef=0.5",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "coef: 0.5" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "goodhart.pipeline.cli", "config", "show", "algo.kl.cof=0.5"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "did you mean 'algo.kl.coef'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_model_path_override_wins_over_tiny():
    cfg = load_config(configs_dir() / "base.yaml", ["model.path=/some/dir"])
    assert cfg.model.name == "path" and cfg.model.path == "/some/dir"
    assert "needs `path`" in _err("model.name=path")


@pytest.mark.parametrize(
    "overrides",
    [["algo.beta=0.5"], ["algo=rloo", "algo.beta=0.1"], ["algo=bon-ft", "algo.kl_coef=0.1"]],
)
def test_old_kl_spellings_name_the_new_key(overrides):
    with pytest.raises(ConfigError, match=r"'algo\.(beta|kl_coef)' was renamed: write 'algo\.kl\.coef'"):
        load_config(None, overrides)


@pytest.mark.parametrize("kind", ["tilt", "ppo", "rloo", "grpo", "bon-ft"])
def test_one_kl_knob_for_every_optimizer(kind):
    cfg = load_config(None, [f"algo={kind}", "algo.kl.coef=0.25"])
    assert cfg.algo.kl.coef == 0.25


def test_a_kl_target_is_refused_where_it_is_not_implemented():
    """kl.target: adaptive control for ppo, a matched KL for tilt (eval/matched.py); grpo has neither."""
    assert load_config(None, ["algo=ppo", "algo.kl.target=2"]).algo.kl.target == 2
    assert load_config(None, ["algo=tilt", "algo.kl.target=2"]).algo.kl.target == 2
    with pytest.raises(ConfigError, match=r"kl\.target.*ppo \(adaptive\) and tilt \(matched\) only"):
        load_config(None, ["algo=grpo", "algo.kl.target=2"])


def test_law_config_and_law_hold_the_same_fields_and_defaults():
    """LawConfig (the typed config) and rewards.laws.Law (the sampler) are two views of one law:
    the same seven fields with the same defaults, so base/scoring.py passes one to the other whole."""
    import dataclasses

    from goodhart.pipeline.base.scoring import law
    from goodhart.pipeline.config.schema import LawConfig
    from goodhart.rewards.laws import Law

    sampler = {f.name: f.default for f in dataclasses.fields(Law)}
    config = {name: f.default for name, f in LawConfig.model_fields.items()}
    assert list(sampler) == list(config)
    assert {k: v for k, v in sampler.items() if k != "name"} == {k: v for k, v in config.items() if k != "name"}
    cfg = LawConfig(name="student_t", df=3.0, scale=0.5, loc=1.0, center=True)
    assert law(cfg) == Law("student_t", df=3.0, sigma=1.0, alpha=1.5, scale=0.5, loc=1.0, center=True)


def test_config_show_prints_only_the_chosen_laws_parameter():
    from goodhart.pipeline.config.load import load_config, shown_yaml, to_yaml

    cfg = load_config(configs_dir() / "base.yaml", ["reward=pareto"])
    shown = yaml.safe_load(shown_yaml(cfg))
    error = shown["reward"]["error"]["law"]
    assert error["name"] == "pareto" and "alpha" in error and not {"df", "sigma"} & set(error)
    assert {"scale", "loc", "center"} <= set(error)
    full = yaml.safe_load(to_yaml(cfg))["reward"]["error"]["law"]  # what point directories keep
    assert {"df", "sigma", "alpha"} <= set(full)
    assert load_config(None, ["reward=student_t"]).reward.error.law.label == "student_t(df=2)"
