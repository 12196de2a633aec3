"""The `hf` reward scores batches of texts of similar length (each pads only to its own longest
text) and returns the scores in the input order: the same numbers as scoring each text alone."""

from __future__ import annotations

import numpy as np
from tiny_runs import tiny_classifier

from goodhart.rewards.plugins import HFClassifierReward


def test_sorted_batches_give_each_text_its_own_score_in_input_order(small_model_dir, tmp_path):
    path = str(tiny_classifier(small_model_dir, tmp_path / "rm"))
    rng = np.random.default_rng(0)
    words = ["good", "bad", "the", "movie", "was", "great", "phone", "broke", "then", "and"]
    comps = [" " + " ".join(rng.choice(words, size=int(k))) + "." for k in rng.integers(1, 30, size=23)]
    prompts = ["review:"] * len(comps)
    alone = HFClassifierReward(path, batch_size=1, device="cpu").score(prompts, comps)
    batched = HFClassifierReward(path, batch_size=4, device="cpu")
    got = batched.score(prompts, comps)
    assert got.shape == (23,) and np.allclose(got, alone, atol=1e-5)
    assert len(set(np.round(alone, 5))) > 15  # distinct scores: a permuted order would show
    # and the order is the caller's: reversed input, reversed scores
    assert np.allclose(batched.score(prompts[::-1], comps[::-1]), alone[::-1], atol=1e-5)
    assert batched.score([], []).shape == (0,)


def test_utility_same_scores_the_hf_reward_once(small_model_dir, tmp_path, monkeypatch):
    """`utility: same` is the proxy measured against itself: one model, one scoring pass (it
    used to build a second copy of the classifier and score every text twice)."""
    from goodhart.pipeline.base.scoring import Scorer
    from goodhart.pipeline.config.load import load_config

    path = tiny_classifier(small_model_dir, tmp_path / "rm")
    calls = []
    real = HFClassifierReward.score
    monkeypatch.setattr(HFClassifierReward, "score", lambda self, p, c: calls.append(len(c)) or real(self, p, c))
    cfg = load_config(None, [f"reward={{type: hf, path: {path}, device: cpu}}", "utility=same"])
    scorer = Scorer(cfg)
    assert scorer.utility is scorer.proxy
    prompts, comps = ["a", "b", "c"], [" good.", " bad movie.", " fine"]
    parts = scorer.components(prompts, comps)
    assert calls == [3]
    assert np.array_equal(parts["proxy"], parts["utility"]) and np.all(parts["error"] == 0)
    calls.clear()
    clipped = Scorer(
        load_config(None, [f"reward={{type: hf, path: {path}, device: cpu}}", "utility=same", "clip.high=0"])
    )
    parts = clipped.components(prompts, comps)
    assert calls == [3] and np.allclose(parts["utility"], real(clipped.proxy, prompts, comps))  # unclipped
    assert np.all(parts["proxy"] <= 0)
