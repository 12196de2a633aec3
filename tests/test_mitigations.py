"""Reward-side mitigations (issue 20): transforms anchored at base quantiles, ensembles and the
min-of-k tail law, the ensemble's disagreement reaching the alarm, and their identities."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from goodhart.eval import metrics as M
from goodhart.pipeline import optimizers
from goodhart.pipeline.base.context import PointContext
from goodhart.pipeline.config.schema import RunConfig
from goodhart.pipeline.sweeps.curves import curve_identity
from goodhart.rewards.ensemble import combine, draw_members
from goodhart.rewards.laws import Law
from goodhart.rewards.transform import Transform


def test_transforms_are_anchored_at_base_quantiles():
    rng = np.random.default_rng(0)
    base = rng.standard_t(2, size=20_000)
    q99 = np.quantile(base, 0.99)
    r = np.array([-5.0, 0.0, q99, 1e6])
    clip = Transform("clip").fit(base)
    np.testing.assert_allclose(clip(r), [-5.0, 0.0, q99, q99])
    ls = Transform("log_sigmoid", 0.5, scale=2.0).fit(base)
    med = np.median(base)
    np.testing.assert_allclose(ls(r), np.log(1 / (1 + np.exp(-(r - med) / 2.0))), rtol=1e-12)
    assert ls(np.array([1e300]))[0] == 0.0 and ls.reference == pytest.approx(med)
    rank = Transform("rank").fit(base)
    u = rank(base)
    assert u.min() == 0 and u.max() == 1
    np.testing.assert_allclose(np.quantile(u, [0.1, 0.5, 0.9]), [0.1, 0.5, 0.9], atol=2e-3)  # ~uniform under base
    with pytest.raises(RuntimeError, match="before fit"):
        Transform("clip")(r)


def test_ensemble_combines():
    m = np.array([[1.0, 5.0], [3.0, 1.0], [2.0, 3.0]])
    np.testing.assert_allclose(combine(m, "mean"), [2.0, 3.0])
    np.testing.assert_allclose(combine(m, "min"), [1.0, 1.0])
    np.testing.assert_allclose(combine(m, "uwo", 0.5), [2.0 - 0.5 * np.std([1, 3, 2]), 3.0 - 0.5 * np.std([5, 1, 3])])


def _hill(x: np.ndarray, k: int) -> float:
    """Hill estimate of the tail index alpha from the k largest of x."""
    s = np.sort(x)[::-1]
    return 1.0 / np.mean(np.log(s[:k] / s[k]))


def test_min_of_k_pareto_members_is_pareto_k_alpha():
    """Members share V and draw independent Pareto(alpha) errors: the min of the k errors is
    Pareto(k alpha) exactly (CDF), and its Hill index is ~k alpha; the mean keeps index alpha."""
    alpha, k = 1.5, 4
    law = Law("pareto", alpha=alpha)
    ens = draw_members(Law("gaussian"), law, 4, 50_000, seed=3, k=k)
    x = ens["members"] - ens["utility"][None]  # the k error draws
    mn = x.min(0).ravel()
    # exact law: P(min > z) = z^(-k alpha)
    ks = stats.kstest(mn, stats.pareto(k * alpha).cdf)
    assert ks.pvalue > 1e-3, ks
    assert _hill(mn, 2000) == pytest.approx(k * alpha, rel=0.1)
    assert _hill(x.mean(0).ravel(), 500) == pytest.approx(alpha, rel=0.2)
    # independent members: no correlation between member errors
    assert abs(stats.spearmanr(x[0].ravel(), x[1].ravel())[0]) < 0.02
    # member 0 is the single proxy's own draw
    from goodhart.rewards.distributional import draw

    single = draw(Law("gaussian"), law, 4, 50_000, 3)
    np.testing.assert_array_equal(ens["members"][0], single["proxy"])


def _run(reward: dict, algo: dict, n: int = 2048) -> dict:
    cfg = RunConfig.model_validate({"reward": reward, "algo": algo, "sampling": {"n": n}, "prompts": {"n_eval": 8}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optimizers.get(cfg.algo.kind)(PointContext(cfg, Path("."))).row, cfg


def test_ensemble_feeds_the_alarm_disagreement_and_transform_changes_the_curve():
    rew = {"type": "distributional", "error": "pareto"}
    single, c1 = _run(rew, {"kind": "tilt", "kl": {"coef": 1.0}})
    assert np.isnan(single[M.ALARM_DISAGREEMENT])
    for combine_ in ("mean", "min", "uwo"):
        row, c = _run({**rew, "ensemble": {"k": 4, "combine": combine_}}, {"kind": "tilt", "kl": {"coef": 1.0}})
        assert np.isfinite(row[M.ALARM_DISAGREEMENT]) and row[M.ALARM_DISAGREEMENT] > 0
        assert curve_identity(c)[M.CURVE_PROXY].startswith(f"{combine_}4")
    row, c = _run({**rew, "ensemble": {"k": 4, "combine": "min"}}, {"kind": "bon", "n": 4})
    row, c = _run({**rew, "transform": "clip(quantile=0.9)"}, {"kind": "tilt", "kl": {"coef": 0.3}})
    assert curve_identity(c)[M.CURVE_PROXY] != curve_identity(c1)[M.CURVE_PROXY]
    assert "clip(q=0.9)" in curve_identity(c)[M.CURVE_PROXY]


def test_clipped_proxy_is_bounded_and_min_ensemble_keeps_more_utility():
    """Pareto(1.5) error at a strong tilt: the single proxy's gain is mostly error; the min of 4
    (Pareto(6)) and a clip at the base q99 keep a far larger utility share."""
    rew = {"type": "distributional", "error": "pareto"}
    algo = {"kind": "tilt", "kl": {"coef": 0.3}}
    single, _ = _run(rew, algo)
    mn, _ = _run({**rew, "ensemble": {"k": 4, "combine": "min"}}, algo)
    clip, _ = _run({**rew, "transform": "clip"}, algo)
    assert single[M.GAIN_UTILITY] < 0.2 * mn[M.GAIN_UTILITY]
    assert single[M.GAIN_UTILITY] < clip[M.GAIN_UTILITY]


def test_chi2_tilt_row_has_its_own_label_and_divergence():
    row, _ = _run(
        {"type": "distributional", "error": "student_t(df=3)"},
        {"kind": "tilt", "kl": {"coef": 40.0}, "divergence": "chi2"},
    )
    assert row["algo"] == "tilt-chi2" and row[M.TILT_DIVERGENCE] == "chi2"
    # a strong coefficient keeps the tilt linear: only the far left tail of t3 (a few in 1e5) is cut
    assert 0.0 <= row[M.TILT_DROPPED] < 1e-3
    # linear tilt: utility share of the gain ~ Var(V)/Var(U) = 1/(1+3)
    assert row[M.GAIN_UTILITY] / row[M.GAIN_PROXY] == pytest.approx(0.25, abs=0.08)


def test_text_ensemble_members_and_transform_through_the_scorer():
    """Text path: member 0 is the single proxy's error (same salt), members differ from each
    other, the transform applies to the combined proxy and is part of needs_calibration."""
    from goodhart.pipeline.base.scoring import Scorer

    prompts = ["p"] * 50
    comps = [f"a good text number {i}" for i in range(50)]
    one = Scorer(RunConfig.model_validate({"reward": {"type": "synthetic", "error": {"law": "pareto"}}}))
    ens = Scorer(
        RunConfig.model_validate(
            {
                "reward": {
                    "type": "synthetic",
                    "error": {"law": "pareto"},
                    "ensemble": {"k": 3, "combine": "min"},
                    "transform": "rank",
                }
            }
        )
    )
    assert ens.needs_calibration()
    ens.transform.fit(ens.raw_proxy(prompts, comps))
    assert not ens.needs_calibration()
    a, b = one.components(prompts, comps), ens.components(prompts, comps)
    assert b["members"].shape == (3, 50)
    np.testing.assert_allclose(b["members"][0], a["proxy"])
    assert not np.allclose(b["members"][1], b["members"][0])
    np.testing.assert_allclose(b["proxy"], ens.transform(b["members"].min(0)))
    assert 0 <= b["proxy"].min() and b["proxy"].max() <= 1


def test_bon_alarm_with_an_ensemble_matches_the_plain_alarm_but_for_disagreement():
    rew = {"type": "distributional", "error": "lognormal"}
    row, _ = _run({**rew, "ensemble": {"k": 4, "combine": "mean"}}, {"kind": "bon", "n": 16})
    assert np.isfinite(row[M.ALARM_DISAGREEMENT])
    from goodhart.eval.alarm import bon_alarm
    from goodhart.pipeline.base.context import PointContext

    cfg = RunConfig.model_validate(
        {
            "reward": {**rew, "ensemble": {"k": 4, "combine": "mean"}},
            "algo": {"kind": "bon", "n": 16},
            "sampling": {"n": 2048},
            "prompts": {"n_eval": 8},
        }
    )
    plain = bon_alarm(PointContext(cfg, Path(".")).pool().proxy, 16, row[M.KL])
    assert row[M.ALARM_DV_RATIO] == pytest.approx(plain.dv_ratio, rel=1e-9)
    assert row[M.ALARM_TOP_SHARE] == pytest.approx(plain.top_share, rel=1e-6, nan_ok=True)


def _text_cfg(model_dir, kind: str, *overrides: str):
    """The tiny run of `kind` (tests/tiny_runs.py; `tilt`: the same pool settings) on a pareto proxy."""
    from tiny_runs import TRL, tiny_cfg

    pareto = ("reward=pareto", "reward.error.calibration_samples=64")
    if kind != "tilt":
        return tiny_cfg(model_dir, kind, *pareto, *overrides)
    from goodhart.pipeline.config.load import configs_dir, load_config

    pool = [o for o in TRL if not o.startswith("algo.")]
    return load_config(
        str(configs_dir() / "base.yaml"),
        ["model.name=path", f"model.path={model_dir}", "algo=tilt", *pool, *pareto, *overrides],
    )


def test_text_pool_transform_is_anchored_on_train_base_samples_and_keyed(small_model_dir, tmp_path):
    """A clip at the base q99 of the *train* prompts' calibration samples: the held-out pool's proxy
    never exceeds it, and the pool's cache key carries the fitted quantile."""
    from goodhart.pipeline.base.context import PointContext

    plain = PointContext(_text_cfg(small_model_dir, "tilt"), tmp_path, progress=False).pool()
    cfg = _text_cfg(small_model_dir, "tilt", "reward.transform=clip(quantile=0.5)")
    pool = PointContext(cfg, tmp_path, progress=False).pool()
    ref = pool.transform["ref"][0]
    assert pool.proxy.max() <= ref < plain.proxy.max()
    np.testing.assert_allclose(pool.proxy, np.minimum(plain.proxy, ref))
    assert pool.key != plain.key
    ens = PointContext(
        _text_cfg(small_model_dir, "tilt", "reward.ensemble.k=3", "reward.ensemble.combine=min"),
        tmp_path,
        progress=False,
    ).pool()
    assert ens.members.shape == (3, *plain.shape)
    np.testing.assert_allclose(ens.members[0], plain.proxy)
    np.testing.assert_allclose(ens.proxy, ens.members.min(0))


@pytest.mark.slow
@pytest.mark.parametrize("mitigation", ["reward.transform=clip", "reward.ensemble.combine=min"])
def test_grpo_trains_on_a_mitigated_proxy(small_model_dir, tmp_path, mitigation):
    """The reward-side mitigations reach a trained optimizer: GRPO on a clipped proxy or on the min
    of 4 members (feature-mode error), two steps; the row is finite and the clipped proxy stays at
    or below its base quantile."""
    from tiny_runs import run_direct

    extra = ["reward.ensemble.k=4"] if "ensemble" in mitigation else []
    cfg = _text_cfg(small_model_dir, "grpo", "algo.steps=2", "reward.error.mode=feature", *extra, mitigation)
    out, _ = run_direct(cfg, tmp_path / "p")
    row = out.row
    assert np.isfinite(row[M.KL]) and np.isfinite(row[M.GAIN_UTILITY])
    if "clip" in mitigation:
        from goodhart.pipeline.base.context import PointContext

        ref = PointContext(cfg, tmp_path, progress=False).pool().transform["ref"][0]
        assert row[M.PROXY] <= ref + 1e-12


def _tiny_tilt(model_dir) -> dict:
    """A tilt on the small model's pool of 2 prompts x 16 completions, keyword utility (no reward)."""
    return {
        "utility": {"type": "keyword", "words": ["good"]},
        "model": {"path": str(model_dir)},
        "prompts": {"n_eval": 2, "n_train": 2},
        "sampling": {"n": 16, "max_new_tokens": 8},
        "algo": {"kind": "tilt", "kl": {"coef": 0.5}},
        "eval": {"n_examples": 0},
    }


@pytest.fixture(scope="module")
def seeded_rms(small_model_dir, tmp_path_factory):
    """Three one-output reward-model checkpoints on the small test backbone, differing only in
    the seed of the score head's initialisation, saved as `goodhart train-rm` saves its output
    (what an ensemble of train-rm runs with seeds 0..2 is, short of the training itself)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = []
    tok = AutoTokenizer.from_pretrained(small_model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    for seed in range(3):
        torch.manual_seed(seed)
        m = AutoModelForSequenceClassification.from_pretrained(small_model_dir, num_labels=1)
        m.config.pad_token_id = tok.pad_token_id
        d = tmp_path_factory.mktemp(f"rm-seed{seed}")
        m.save_pretrained(d)
        tok.save_pretrained(d)
        out.append(str(d))
    return out


def test_learned_ensemble_of_hf_reward_models_combines_and_feeds_the_alarm(seeded_rms, small_model_dir, in_tmp):
    """reward: {type: ensemble, members: [hf, hf, hf]}: each member scored by its own checkpoint,
    combined as mean / min / mean - lam std; the members reach the pool and the alarm's
    disagreement, and the curve's identity names the combination."""
    from goodhart.pipeline.base.scoring import Scorer, build_reward
    from goodhart.pipeline.config.schema import HFReward

    prompts = ["The movie was"] * 6 + ["I think"] * 6
    comps = [f" good and fine {'very ' * i}" for i in range(6)] + [f" bad {'so ' * i}" for i in range(6)]
    single = np.stack([build_reward(HFReward(path=p)).score(prompts, comps) for p in seeded_rms])
    assert not np.allclose(single[0], single[1])  # the seeds made different reward models
    members = [{"type": "hf", "path": p} for p in seeded_rms]
    for how, want in (
        ("mean", single.mean(0)),
        ("min", single.min(0)),
        ("uwo", single.mean(0) - 0.5 * single.std(0)),
    ):
        cfg = RunConfig.model_validate(
            {
                "reward": {"type": "ensemble", "members": members, "combine": how, "lam": 0.5},
                "utility": {"type": "keyword", "words": ["good"]},
            }
        )
        parts = Scorer(cfg).components(prompts, comps)
        np.testing.assert_allclose(parts["members"], single, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(parts["proxy"], want, rtol=1e-5, atol=1e-6)
        assert curve_identity(cfg)[M.CURVE_PROXY].startswith(f"{how}3")
    cfg = RunConfig.model_validate(
        {"reward": {"type": "ensemble", "members": members, "combine": "min"}, **_tiny_tilt(small_model_dir)}
    )
    ctx = PointContext(cfg, in_tmp, progress=False)
    pool = ctx.pool()
    assert pool.members is not None and pool.members.shape == (3, 2, 16)
    np.testing.assert_allclose(pool.proxy, pool.members.min(0), rtol=1e-6, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = optimizers.get("tilt")(ctx).row
    assert np.isfinite(row[M.ALARM_DISAGREEMENT])


def test_pool_statistics_are_computed_once_per_pool_content(monkeypatch):
    """pipeline/base/pool.py pool_memo: the alarm's base statistics of one pool are built once
    for every knob (same bytes: the same object, even from a copy), again for other contents,
    and the oldest leave memory first past the byte budget (the disk layer, tests/test_stats_cache.py,
    still has them)."""
    import goodhart.pipeline.base.pool as pool_mod
    from goodhart.pipeline.base.ensemble import base_stats

    calls = []

    def stats_of(a, scale=1.0):
        calls.append(1)
        return {"s": np.asarray(a) * scale}

    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 256))
    x = pool_mod.pool_memo(stats_of, a, scale=2.0)
    assert pool_mod.pool_memo(stats_of, a.copy(), scale=2.0) is x and len(calls) == 1
    pool_mod.pool_memo(stats_of, a, scale=3.0)
    b = a.copy()
    b[0, 0] += 1e-12
    pool_mod.pool_memo(stats_of, b, scale=2.0)
    assert len(calls) == 3
    monkeypatch.setattr(pool_mod, "POOL_MEMO_BYTES", 2 * a.nbytes)
    pool_mod.pool_memo(stats_of, a + 1, scale=2.0)  # over budget: the oldest entries are dropped
    y = pool_mod.pool_memo(stats_of, a, scale=2.0)  # ...from memory; the disk still has it
    assert len(calls) == 4 and y is not x and np.array_equal(y["s"], x["s"])
    monkeypatch.setenv("GOODHART_STATS_CACHE_MB", "0")  # no disk layer: dropped means computed again
    pool_mod.pool_memo(stats_of, a + 2, scale=2.0)
    pool_mod.pool_memo(stats_of, a + 1, scale=2.0)
    assert len(calls) == 6
    from goodhart.eval.alarm import AlarmRule, BaseStats

    s1, s2 = base_stats(a, AlarmRule(n_null=19)), base_stats(a.copy(), AlarmRule(n_null=19))
    assert s1 is s2 and s1.null.n_null == 19

    fresh = BaseStats.from_pool(a, n_null=19, null_seed=0)
    assert fresh.sigma == s1.sigma and np.array_equal(fresh.null.tails[0], s1.null.tails[0])


def test_a_single_learned_proxy_is_transformed_as_a_one_member_ensemble(seeded_rms, small_model_dir, in_tmp):
    """reward: {type: ensemble, members: [one hf checkpoint], transform: clip}: the reward model's
    own scores, clipped at their base quantile; named as the model under its transform; no
    members, so no disagreement evidence."""
    hf = {"type": "hf", "path": seeded_rms[0]}
    common = _tiny_tilt(small_model_dir)
    plain_cfg = RunConfig.model_validate({"reward": hf, **common})
    cfg = RunConfig.model_validate(
        {"reward": {"type": "ensemble", "members": [hf], "transform": "clip(quantile=0.5)"}, **common}
    )
    plain = PointContext(plain_cfg, in_tmp / "a", progress=False).pool()
    pool = PointContext(cfg, in_tmp / "b", progress=False).pool()
    ref = pool.transform["ref"][0]
    assert pool.members is None and pool.key != plain.key
    assert pool.proxy.max() <= ref < plain.proxy.max()
    np.testing.assert_allclose(pool.proxy, np.minimum(plain.proxy, ref), rtol=1e-6, atol=1e-6)
    name = curve_identity(cfg)[M.CURVE_PROXY]
    assert name.startswith("clip(") and f"hf:{seeded_rms[0]}" in name and "mean1" not in name
