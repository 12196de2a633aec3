"""The reward-model tail probe: mixture KL arithmetic (by hand and by brute force), the ACG
search against a small learned reward model built here, the three modes end to end through the
CLI (files, MLflow, report), and the refusal of non-differentiable rewards."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from goodhart.eval.mixture import gaussian_gain_bound, mixture_gain, mixture_kl, mixture_table
from goodhart.pipeline.probe.acg import candidates, edits_at

sys.path.insert(0, str(Path(__file__).parent))
from probe_rm import build_mean_rm, build_sentiment_rm


# ---------------------------------------------------------------- mixture arithmetic
def test_mixture_kl_by_hand():
    # q = 1/4, p = 1/2: pi_p(y*) = 1/2 * 1/4 + 1/2 = 5/8; every other y keeps (1 - p) of its mass.
    # KL = 5/8 log((5/8) / (1/4)) + (1/2)(3/4) log(1/2) = 0.625 ln 2.5 - 0.375 ln 2
    hand = 0.625 * 0.9162907318741551 - 0.375 * 0.6931471805599453
    assert mixture_kl(0.5, math.log(0.25)) == pytest.approx(hand, abs=1e-12)
    assert hand == pytest.approx(0.312752, abs=1e-6)
    assert mixture_kl(1.0, math.log(0.25)) == pytest.approx(math.log(4))  # all mass on y*
    assert mixture_kl(0.0, -50.0) == 0.0
    assert mixture_gain(0.1, 5.0, 1.0) == pytest.approx(0.4)
    assert gaussian_gain_bound(2.0, 0.5) == pytest.approx(1.0)


def test_mixture_kl_and_gain_match_brute_force_on_a_discrete_law():
    rng = np.random.default_rng(0)
    pi0 = rng.dirichlet(np.ones(7))
    r = rng.normal(size=7)
    for star in range(7):
        for p in (1e-3, 0.05, 0.3, 0.9, 1.0):
            pip = (1 - p) * pi0
            pip[star] += p
            live = pip > 0  # 0 log 0 = 0 (p = 1 leaves no mass off y*)
            kl = float(np.sum(pip[live] * np.log(pip[live] / pi0[live])))
            gain = float(pip @ r - pi0 @ r)
            assert mixture_kl(p, math.log(pi0[star])) == pytest.approx(kl, rel=1e-10, abs=1e-14)
            assert mixture_gain(p, r[star], float(pi0 @ r)) == pytest.approx(gain, rel=1e-10, abs=1e-14)


def test_mixture_kl_for_an_improbable_sequence_is_p_log_p_over_q():
    # log q = -300 underflows q to 0 in float64; the exact form must still be finite and match
    # the q -> 0 limit p log(p / q) + (1 - p) log(1 - p).
    for p in (1e-4, 0.01, 0.5):
        limit = p * (math.log(p) + 300) + (1 - p) * math.log1p(-p)
        assert mixture_kl(p, -300.0) == pytest.approx(limit, rel=1e-12)
    rows = mixture_table([0.01, 0.1], -100.0, reward_star=3.0, base_mean=1.0, base_std=0.5)
    assert [round(x.gain, 12) for x in rows] == [0.02, 0.2]
    assert rows[0].kl < rows[1].kl
    with pytest.raises(ValueError, match="log_q"):
        mixture_kl(0.1, 0.5)


# ---------------------------------------------------------------- search mechanics
def test_edit_schedule_anneals_from_start_to_end():
    sched = [edits_at(t, 10, 5, 1) for t in range(10)]
    assert sched[0] == 5 and sched[-1] == 1 and sched == sorted(sched, reverse=True)
    assert edits_at(0, 1, 3, 1) == 3


def test_candidates_change_m_positions_to_top_k_tokens():
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.arange(10, 18)  # (L=8,)
    top = torch.arange(100, 100 + 8 * 4).reshape(8, 4)  # (L, k=4): distinct from x
    c = candidates(x, top, 3, 50, gen)  # (50, 8)
    changed = c != x
    assert changed.sum(1).eq(3).all()  # exactly m distinct positions per candidate
    for row, mask in zip(c, changed):
        for pos in mask.nonzero().flatten().tolist():
            assert int(row[pos]) in top[pos].tolist()


# ---------------------------------------------------------------- against a learned reward model
@pytest.fixture(scope="module")
def rm_dir(small_model_dir, tmp_path_factory) -> Path:
    """A reward model on the base model's tokenizer whose reward every position moves."""
    return build_mean_rm(small_model_dir, tmp_path_factory.mktemp("probe-rm") / "rm")


def test_token_scores_equal_the_reward_text_path_for_round_tripping_sequences(rm_dir):
    import torch

    from goodhart.pipeline.probe.token_rm import TokenRM
    from goodhart.rewards.plugins import HFClassifierReward

    rm = TokenRM(HFClassifierReward(str(rm_dir)), "the movie was", whole_characters=True)
    x = rm.random(64, 6, torch.Generator().manual_seed(0))
    ok = rm.round_trips(x)
    assert ok.any()
    tokens, texts = rm.score(x[torch.from_numpy(ok)]), rm.score_texts(rm.texts(x[torch.from_numpy(ok)]))
    assert np.allclose(tokens, texts, atol=1e-5)
    grad, value = rm.gradient(x[0])
    assert grad.shape == (6, rm.vocab) and value == pytest.approx(float(rm.score(x[:1])[0]), abs=1e-5)


def test_acg_beats_the_best_of_as_many_random_sequences(rm_dir):
    import torch

    from goodhart.pipeline.probe.acg import acg_search
    from goodhart.pipeline.probe.config import SearchConfig
    from goodhart.pipeline.probe.token_rm import TokenRM
    from goodhart.rewards.plugins import HFClassifierReward

    rm = TokenRM(HFClassifierReward(str(rm_dir)), "the movie was", whole_characters=True)
    cfg = SearchConfig(steps=25, candidates=48, top_k=16, edits_start=3, restarts=1, seed=0)
    res = acg_search(rm, cfg, 12, 256, progress=False)
    rand = rm.score(rm.random(res.scored, 12, torch.Generator().manual_seed(1)))
    assert res.scored > 1000 and res.candidates_per_s > 0
    assert res.best.history == sorted(res.best.history)  # best-so-far never falls
    # "well above": past the random maximum by two random std devs (2.7 measured at seed 0)
    assert res.best.reward > rand.max() + 2 * rand.std(), (res.best.reward, rand.max(), rand.std())
    # what is reported is what the reward's text path gives to the text
    assert rm.score_texts([res.best.text])[0] == pytest.approx(res.best.reward, abs=1e-5)


# ---------------------------------------------------------------- the three modes, end to end
def _config(tmp: Path, model_dir: Path, reward: str) -> Path:
    cfg = tmp / "probe_run.yaml"
    cfg.write_text(
        f"name: t\nmodel: {{path: {model_dir}}}\nreward: {reward}\noutput_dir: {tmp / 'runs'}\n"
        "prompts: {n_eval: 4, n_train: 4}\nsampling: {max_new_tokens: 12, batch_size: 256}\n"
    )
    return cfg


def test_random_base_optimize_then_report_and_mlflow(in_tmp, small_model_dir, rm_dir, capsys):
    from mlflow import MlflowClient

    from goodhart.pipeline.cli.main import main

    # the README's form: configs/base.yaml with the reward (and here a small base model) overridden
    base_yaml = str(Path(__file__).resolve().parents[1] / "configs" / "base.yaml")
    cfg = [base_yaml, f"reward={{type: hf, path: {rm_dir}}}", "name=t", f"model.path={small_model_dir}"]
    cfg += [f"output_dir={in_tmp / 'runs'}", "sampling.max_new_tokens=12"]
    small = ["probe.n_samples=600", "probe.length=8", "probe.base_reference=64"]
    for mode in ("random", "base"):
        assert main(["probe", *cfg, "--mode", mode, "--quiet", *small]) == 0
        out = capsys.readouterr().out
        assert "tail verdict:" in out and "MLflow: experiment 'probe'" in out
    search = ["probe.search.steps=8", "probe.search.candidates=32", "probe.search.restarts=2", "probe.mix_p=[0.01,0.1]"]
    assert main(["probe", *cfg, "--mode", "optimize", "--quiet", *small, *search]) == 0
    out = capsys.readouterr().out
    assert "candidates/s" in out and "base std devs" in out and "KL (nats)" in out

    root = in_tmp / "runs" / "probe-t"
    for mode in ("random", "base"):
        info = json.loads((root / f"{mode}.json").read_text())
        assert info["distribution"]["n"] == 600 and info["tails"]["verdict"] in ("light", "heavy", "inconclusive")
        assert (root / f"tails_{mode}.png").is_file() and np.load(root / f"{mode}.npz")["rewards"].shape == (600,)
    opt = json.loads((root / "optimize.json").read_text())
    assert len(opt["best"]) == 2 and "the base result" in opt["reference"]["source"]  # reused the base mode's
    best, base = opt["best"][0], opt["reference"]["distribution"]
    assert best["z"] == pytest.approx((best["reward"] - base["mean"]) / base["std"])
    assert best["base_logprob"] < 0 and np.isfinite(best["base_logprob"])
    row = opt["mixture"][0]
    assert row["kl"] == pytest.approx(mixture_kl(0.01, best["base_logprob"]))
    assert row["gain"] == pytest.approx(0.01 * (best["reward"] - base["mean"]))

    client = MlflowClient(tracking_uri=f"sqlite:///{in_tmp / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("probe").experiment_id])
    by_mode = {r.data.tags["goodhart.probe_mode"]: r for r in runs}
    assert set(by_mode) == {"random", "base", "optimize"}
    assert by_mode["optimize"].data.metrics["probe/best/reward"] == pytest.approx(best["reward"])
    assert by_mode["optimize"].data.params["probe.search.steps"] == "8"
    curve = client.get_metric_history(by_mode["optimize"].info.run_id, "probe/search/best")
    assert len(curve) == 2 * 8 and max(m.value for m in curve) == pytest.approx(
        max(r["token_reward"] for r in opt["best"])
    )

    assert main(["report", str(root)]) == 0
    out = capsys.readouterr().out
    assert "tail verdict" in out and "random" in out and "base" in out and "restart best" in out
    assert (root / "report" / "reward_distributions.png").is_file() and (root / "report" / "report.md").is_file()


def test_optimize_refuses_a_reward_without_gradient(in_tmp, small_model_dir, capsys):
    from goodhart.pipeline.cli.main import main

    cfg = _config(in_tmp, small_model_dir, "sentiment")
    assert main(["probe", str(cfg), "--mode", "optimize", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a differentiable reward: reward.type=hf" in err
    assert "reward.type=sentiment" in err


def test_random_mode_scores_any_reward_as_text(in_tmp, small_model_dir, capsys):
    from goodhart.pipeline.cli.main import main

    cfg = _config(in_tmp, small_model_dir, "sentiment")
    assert main(["probe", str(cfg), "--mode", "random", "--quiet", "probe.n_samples=50", "tracking.enabled=false"]) == 0
    out = capsys.readouterr().out
    assert "scored as text" in out and "tails: not run" in out  # 50 samples: too few for a verdict
    # one probe directory holds one reward: another reward under the same name is refused
    other = _config(in_tmp, small_model_dir, "{type: length}")
    assert (
        main(["probe", str(other), "--mode", "random", "--quiet", "probe.n_samples=50", "tracking.enabled=false"]) == 2
    )
    assert "holds a probe of another reward or prompt" in capsys.readouterr().err


@pytest.mark.slow
def test_a_learned_sentiment_rm_is_pushed_past_every_base_completion(small_model_dir, tmp_path):
    """The README's demo reward model: a briefly trained sentiment RM on the base backbone."""
    from goodhart.pipeline.probe.acg import acg_search
    from goodhart.pipeline.probe.config import SearchConfig
    from goodhart.pipeline.probe.token_rm import TokenRM
    from goodhart.rewards.plugins import HFClassifierReward

    rm_path = build_sentiment_rm(small_model_dir, tmp_path / "srm", samples=512, steps=60)
    rm = TokenRM(HFClassifierReward(str(rm_path)), "the movie was", whole_characters=True)
    res = acg_search(rm, SearchConfig(steps=30, candidates=64, top_k=16, restarts=1), 12, 256, progress=False)
    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.base.sampling import sample_completions
    from goodhart.pipeline.config.schema import ModelConfig, SamplingConfig

    model, tok = load_causal_lm(ModelConfig(path=str(small_model_dir)), progress=False)
    comps = sample_completions(model, tok, ["the movie was"], 256, SamplingConfig(max_new_tokens=12), 0, False)[0]
    assert res.best.reward > rm.score_texts(comps).max()


def test_base_logprob_equals_the_samplers_own_token_scores(small_model_dir):
    """log pi_0(y | prompt) from completion_logprob = the sum of the sampler's own per-token
    log-probabilities (EOS included when the completion stopped early), for every sample whose
    tokens are the canonical tokenization of its text."""
    import torch

    from goodhart.pipeline.base.models import load_causal_lm
    from goodhart.pipeline.config.schema import ModelConfig
    from goodhart.pipeline.probe.logprob import completion_logprob

    model, tok = load_causal_lm(ModelConfig(path=str(small_model_dir)), progress=False)
    prompt, cap = "the movie was", 10
    enc = tok([prompt] * 32, return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(
        **enc, do_sample=True, top_k=0, max_new_tokens=cap, output_scores=True, return_dict_in_generate=True
    )
    steps = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)  # (32, <= cap)
    new = out.sequences[:, enc["input_ids"].shape[1] :]
    checked = stopped = 0
    for ids, lp in zip(new.tolist(), steps):
        n = ids.index(tok.eos_token_id) if tok.eos_token_id in ids else len(ids)
        text = tok.decode(ids[:n], skip_special_tokens=True)
        if tok(text, add_special_tokens=False)["input_ids"] != ids[:n]:
            continue  # another tokenization of the same text: completion_logprob takes the canonical one
        want = float(lp[: min(n + 1, len(ids))].sum())  # + the EOS step when it stopped early
        got = completion_logprob(model, tok, prompt, text, cap)
        assert got.logprob == pytest.approx(want, abs=1e-3) and got.eos_term == (n < cap)
        checked += 1
        stopped += n < cap
    assert checked >= 8 and 0 < stopped < checked  # both branches: stopped by EOS, cut by the cap
    assert completion_logprob(model, tok, prompt, " a" * (cap + 3), cap).logprob == -np.inf  # past the cap


def test_probe_config_errors_are_one_line(in_tmp, small_model_dir, capsys):
    from goodhart.pipeline.cli.main import main

    cfg = _config(in_tmp, small_model_dir, "sentiment")
    assert main(["probe", str(cfg), "--mode", "random", "probe.serach.steps=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'search'" in err
    assert main(["probe", str(cfg), "--mode", "random", "probe.search.edits_start=1", "probe.search.edits_end=3"]) == 2
    assert "edits_end=3 must not exceed edits_start=1" in capsys.readouterr().err


def test_shipped_probe_configs_validate():
    from goodhart.pipeline.probe.config import load_probe_config

    cpu, gpu = load_probe_config(), load_probe_config("rm7b_gpu")
    assert cpu.search.steps == 60 and cpu.random_budget
    assert gpu.n_samples == 16384 and gpu.search.candidates == 256 and not gpu.random_budget
    assert load_probe_config(None, ["search.top_k=7"]).search.top_k == 7
