"""The one KL measurement (pipeline/train/kl.py) against hand computations, and the KL controller."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from goodhart.pipeline.train.kl import (
    KL_ESTIMATOR,
    KLController,
    completion_mask,
    concat,
    kl_metrics,
    masked_mean,
    per_token_kl,
    position_ids,
    sequence_kl,
    token_logprobs,
)

PAD, BOS, EOS, W = 0, 1, 2, 3  # a 4-token vocabulary


class Bigram(torch.nn.Module):
    """logits(next | prefix) = table[last token]: log-probs are computable by hand."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float32))

    def forward(self, input_ids, attention_mask=None, position_ids=None, **kw):
        return SimpleNamespace(logits=self.table[input_ids])  # (B, T, V)


def hand_logp(table, prev, tok):
    row = table[prev]
    return row[tok] - math.log(sum(math.exp(v) for v in row))


PI = [[0.1, 0.2, 0.3, 0.4], [0.0, 0.5, -1.0, 1.5], [0.3, 0.3, 0.3, 0.3], [-0.5, 0.2, 1.0, 0.7]]
PI0 = [[0.0, 0.0, 0.0, 0.0], [0.2, -0.3, 0.4, 1.0], [0.1, 0.0, 0.5, -0.2], [0.3, -0.4, 0.2, 1.1]]

# Row 0: left-padded prompt, completion W EOS | then a stray W and a pad after EOS (masked).
# Row 1: full prompt, completion of 4 tokens without EOS (truncated: all 4 count).
PROMPTS = torch.tensor([[PAD, BOS, W], [BOS, W, W]])
PROMPT_MASK = torch.tensor([[0, 1, 1], [1, 1, 1]])
RESPONSES = torch.tensor([[W, EOS, W, PAD], [BOS, W, W, W]])


def test_completion_mask_counts_eos_and_drops_what_follows():
    assert completion_mask(RESPONSES, EOS).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    # pad == eos (a common fallback): the first EOS still ends the completion
    assert completion_mask(torch.tensor([[5, 2, 2, 2]]), 2).tolist() == [[1, 1, 0, 0]]
    assert completion_mask(torch.tensor([[2, 5, 5]]), 2).tolist() == [[1, 0, 0]]


def test_sequence_kl_matches_a_hand_computation():
    pi, pi0 = Bigram(PI), Bigram(PI0)
    mask = completion_mask(RESPONSES, EOS)
    ids, am = torch.cat([PROMPTS, RESPONSES], 1), torch.cat([PROMPT_MASK, mask], 1)
    lp, lp0 = token_logprobs(pi, ids, am, 3), token_logprobs(pi0, ids, am, 3)
    seq = sequence_kl(lp, lp0, mask)

    want_k1, want_k3, n_tok = [], [], []
    for b in range(2):
        prev, k1, k3, n = PROMPTS[b, -1].item(), 0.0, 0.0, 0
        for t in range(RESPONSES.shape[1]):
            tok = RESPONSES[b, t].item()
            r = hand_logp(PI, prev, tok) - hand_logp(PI0, prev, tok)
            assert lp[b, t].item() == pytest.approx(hand_logp(PI, prev, tok), abs=1e-6)
            if mask[b, t]:
                k1, k3, n = k1 + r, k3 + math.exp(-r) - 1 + r, n + 1
            prev = tok
        want_k1.append(k1), want_k3.append(k3), n_tok.append(n)
    assert n_tok == [2, 4]  # EOS counted; the stray token after it not
    np.testing.assert_allclose(seq["k1"], want_k1, atol=1e-6)
    np.testing.assert_allclose(seq["k3"], want_k3, atol=1e-6)
    m = kl_metrics(seq)
    assert m["kl"] == pytest.approx(np.mean(want_k1), abs=1e-6)
    assert m["kl/k1"] == pytest.approx(sum(want_k1) / 6, abs=1e-6)
    assert m["kl/k3"] == pytest.approx(sum(want_k3) / 6, abs=1e-6)
    assert KL_ESTIMATOR == "seq_k1"
    # concatenating batches gives the same numbers as one batch
    halves = concat([{k: v[:1] for k, v in seq.items()}, {k: v[1:] for k, v in seq.items()}])
    assert kl_metrics(halves) == pytest.approx(m)


def test_temperature_divides_the_logits():
    pi = Bigram(PI)
    mask = completion_mask(RESPONSES, EOS)
    ids, am = torch.cat([PROMPTS, RESPONSES], 1), torch.cat([PROMPT_MASK, mask], 1)
    hot = token_logprobs(pi, ids, am, 3, temperature=2.0)
    half = [[v / 2 for v in row] for row in PI]
    assert hot[1, 0].item() == pytest.approx(hand_logp(half, W, BOS), abs=1e-6)


def test_estimators_are_unbiased_for_a_categorical():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    q = torch.tensor([0.25, 0.25, 0.25, 0.25])
    exact = float((p * (p / q).log()).sum())
    gen = torch.Generator().manual_seed(0)
    y = torch.multinomial(p, 200_000, replacement=True, generator=gen)
    lp, lq, ones = p.log()[y][None], q.log()[y][None], torch.ones(1, y.numel())
    assert per_token_kl(lp, lq, ones, "k1").mean().item() == pytest.approx(exact, abs=0.01)
    k3 = per_token_kl(lp, lq, ones, "k3")
    assert k3.min().item() >= 0 and k3.mean().item() == pytest.approx(exact, abs=0.01)
    with pytest.raises(ValueError, match="k1 or k3"):
        per_token_kl(lp, lq, ones, "k2")


# ---- on the real (small) built-in model ---------------------------------------------------
def _load(small_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(small_model_dir)
    return AutoModelForCausalLM.from_pretrained(small_model_dir).eval(), tok


@torch.no_grad()
def test_base_against_itself_is_exactly_zero_and_a_perturbed_head_matches_explicit_softmax(small_model_dir):
    model, tok = _load(small_model_dir)
    other, _ = _load(small_model_dir)
    g = torch.Generator().manual_seed(1)
    other.lm_head.weight.add_(0.05 * torch.randn(other.lm_head.weight.shape, generator=g))

    prompts = ["the movie was", "i think my new phone is really"]
    enc = tok(prompts, return_tensors="pt", padding=True)  # left padding: the first prompt is padded
    assert enc["attention_mask"][0, 0] == 0
    torch.manual_seed(0)
    gen = model.generate(
        **enc, do_sample=True, top_k=0, max_new_tokens=6, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
    )
    n_prompt = enc["input_ids"].shape[1]
    resp = gen[:, n_prompt:]
    mask = completion_mask(resp, tok.eos_token_id)
    am = torch.cat([enc["attention_mask"], mask], 1)

    lp = token_logprobs(model, gen, am, n_prompt)
    same = sequence_kl(lp, token_logprobs(model, gen, am, n_prompt), mask)
    assert np.all(same["k1"] == 0) and np.all(same["k3"] == 0)
    assert kl_metrics(same) == {"kl": 0.0, "kl/k1": 0.0, "kl/k3": 0.0}

    seq = sequence_kl(lp, token_logprobs(other, gen, am, n_prompt), mask)
    for b, prompt in enumerate(prompts):
        # by hand: each sequence alone (no padding), full softmax over the vocabulary
        ids = tok([prompt], return_tensors="pt")["input_ids"]
        k = int(mask[b].sum())
        full = torch.cat([ids, resp[b : b + 1, :k]], 1)
        lo_pi, lo_0 = model(full).logits[0], other(full).logits[0]  # (T, V)
        k1 = 0.0
        for t in range(k):
            pos, y = ids.shape[1] - 1 + t, full[0, ids.shape[1] + t]
            p = torch.exp(lo_pi[pos]) / torch.exp(lo_pi[pos]).sum()
            p0 = torch.exp(lo_0[pos]) / torch.exp(lo_0[pos]).sum()
            assert lp[b, t].item() == pytest.approx(math.log(p[y].item()), abs=1e-4)
            k1 += math.log(p[y].item()) - math.log(p0[y].item())
        assert seq["k1"][b] == pytest.approx(k1, abs=1e-4)
        assert seq["tokens"][b] == k


# ---- the KL coefficient controller ---------------------------------------------------------
def test_fixed_controller_never_moves():
    c = KLController(0.1)
    for kl in (0.0, 5.0, 100.0):
        assert c.update(kl, 64) == 0.1


def test_adaptive_controller_rule():
    c = KLController(1.0, target=2.0, horizon=100)
    assert c.update(10.0, 10) == pytest.approx(1.0 * (1 + 0.2 * 10 / 100))  # error clipped at +0.2
    c = KLController(1.0, target=2.0, horizon=100)
    assert c.update(2.2, 10) == pytest.approx(1.0 * (1 + 0.1 * 10 / 100))  # proportional inside the clip
    c = KLController(1.0, target=2.0, horizon=100)
    assert c.update(0.0, 10) == pytest.approx(1.0 * (1 - 0.2 * 10 / 100))
    s = c.state_dict()
    d = KLController(5.0, target=2.0, horizon=100)
    d.load_state_dict(s)
    assert d.coef == c.coef


def test_adaptive_controller_steers_a_plant_to_its_target():
    # A policy whose KL falls as the penalty grows: KL = 0.5 / beta. The fixed point for target 2 is beta = 0.25.
    for start in (0.01, 4.0):
        c = KLController(start, target=2.0, horizon=200)
        for _ in range(2000):
            c.update(0.5 / c.coef, 32)
        assert c.coef == pytest.approx(0.25, rel=0.02)
        assert 0.5 / c.coef == pytest.approx(2.0, rel=0.02)


def test_completion_logprob_of_the_probe_uses_the_same_slice():
    """probe/logprob.py scores a text with the slice and log-probs of train/kl.py; by hand on the
    bigram: prompt BOS W, completion W W, cap 3 tokens -> EOS is also needed (the sampler stops there)."""
    from goodhart.pipeline.probe.logprob import completion_logprob

    class Tok:
        eos_token_id = EOS

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [{"b": BOS, "w": W}[c] for c in text]}

    pi = Bigram(PI)
    pi.device = torch.device("cpu")
    got = completion_logprob(pi, Tok(), "bw", "ww", max_new_tokens=3, temperature=2.0)
    half = [[v / 2 for v in row] for row in PI]
    want = hand_logp(half, W, W) + hand_logp(half, W, W) + hand_logp(half, W, EOS)
    assert got.eos_term and got.tokens == 2 and got.logprob == pytest.approx(want, abs=1e-5)
    capped = completion_logprob(pi, Tok(), "bw", "ww", max_new_tokens=2)
    assert not capped.eos_term and capped.logprob == pytest.approx(2 * hand_logp(PI, W, W), abs=1e-5)


def test_small_helpers_by_hand():
    # cumsum of the attention mask - 1, left padding held at 0
    assert position_ids(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]
    assert masked_mean(torch.tensor([3.0, 5.0]), torch.tensor([0.0, 1.0])).item() == 5.0  # one token: itself
    assert masked_mean(torch.tensor([3.0, 5.0]), torch.zeros(2)).item() == 0.0  # an empty mask: 0
    empty = kl_metrics({"k1": np.zeros(2), "k3": np.zeros(2), "tokens": np.zeros(2)})
    assert empty == {"kl": 0.0, "kl/k1": 0.0, "kl/k3": 0.0}
    ctl = KLController(1.0, target=1.0)  # default horizon 10000: beta * (1 + 0.2 * 100 / 10000)
    assert ctl.update(2.0, 100) == pytest.approx(1.002, abs=1e-12)
