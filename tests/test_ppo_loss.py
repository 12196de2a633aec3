"""The PPO loss pinned: each term of pipeline/optimizers/ppo.py on tiny tensors, then one whole
`ppo_step` (rollout, k1 or k3 KL in the reward, GAE over padded completions, whitening, both
losses, the gradients they send, the logged diagnostics), against numbers worked out by hand
in the comments. Then the mutation list (MUTATIONS): edits of ppo.py and train/kl.py, each of
which must fail at least one pinned test, so "the tests would notice a broken step" stays checked.
A general operator-mutation run over the same files is tests/test_mutation_run.py (slow).

Every pinned test takes the module under test as its argument `ppo` (the real one via the
fixture; a mutant built from edited source in test_each_mutant_fails_a_pinned_test). Mutants of
train/kl.py run tests/test_kl.py's fixture-free tests and the PPO tests on a ppo.py built on them."""

from __future__ import annotations

import math
import types
from pathlib import Path

import pytest
import torch


def near(t: torch.Tensor, expected, atol: float = 1e-6) -> None:
    torch.testing.assert_close(t.detach(), torch.tensor(expected, dtype=t.dtype), atol=atol, rtol=1e-6)


@pytest.fixture
def ppo():
    from goodhart.pipeline.optimizers import ppo

    return ppo


def test_token_rewards_penalize_kl_on_every_token_and_add_the_score_at_the_end(ppo):
    kl_t = torch.tensor([[0.1, -0.2, 0.3, 0.0], [0.4, 0.5, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0]])
    r = ppo.token_rewards(kl_t, 0.5, torch.tensor([2.0, -1.0]), mask)
    # row 0: -0.5 * (0.1, -0.2, 0.3) = (-0.05, 0.1, -0.15); the score 2 lands on the last token: -0.15 + 2 = 1.85
    # row 1: -0.5 * (0.4, 0.5) = (-0.2, -0.25); -0.25 + (-1) = -1.25; nothing past the end
    near(r, [[-0.05, 0.1, 1.85, 0.0], [-0.2, -1.25, 0.0, 0.0]])


def test_gae_matches_a_hand_computation(ppo):
    r = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.5, 2.0, 0.0, 0.0]])
    v = torch.tensor([[0.1, 0.2, 0.3, 0.0], [0.4, 0.5, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0]])
    g, lam = 0.9, 0.8
    adv, ret = ppo.gae(r, v, mask, g, lam)
    # row 1, V after the last token is 0: delta_1 = 2 - 0.5 = 1.5, delta_0 = 0.5 + 0.9 * 0.5 - 0.4 = 0.55
    # A_1 = 1.5, A_0 = 0.55 + 0.9 * 0.8 * 1.5 = 1.63
    near(adv[1], [1.63, 1.5, 0, 0])
    # row 0: delta = (0.9*0.2 - 0.1, 0.9*0.3 - 0.2, 1 - 0.3) = (0.08, 0.07, 0.7)
    # A_2 = 0.7, A_1 = 0.07 + 0.72 * 0.7 = 0.574, A_0 = 0.08 + 0.72 * 0.574 = 0.49328
    near(adv[0], [0.49328, 0.574, 0.7, 0])
    near(ret, [[0.59328, 0.774, 1.0, 0], [2.03, 2.0, 0, 0]])  # R = A + V


def test_whiten_over_the_masked_tokens(ppo):
    x = torch.tensor([[0.0, 2.0, 9.0], [4.0, 7.0, 7.0]])
    mask = torch.tensor([[1.0, 1, 0], [1, 0, 0]])
    # masked values 0, 2, 4: mean 2, unbiased variance (4 + 0 + 4) / 2 = 4, std 2 -> -1, 0, 1; 0 elsewhere
    near(ppo.whiten(x, mask), [[-1, 0, 0], [1, 0, 0]])
    # two processes holding the same tokens (the reduction doubles every sum): n = 6, mean 2,
    # unbiased variance (4 + 0 + 4) * 2 / 5 = 3.2 -> the end tokens are -+2 / sqrt(3.2) = -+1.1180
    near(ppo.whiten(x, mask, reduce_sum=lambda t: 2 * t), [[-1.118034, 0, 0], [1.118034, 0, 0]], atol=1e-5)


def test_advantages_are_whitened_gae_and_returns_are_not(ppo):
    r = torch.tensor([[0.0, 0.0, 3.0]])
    v = torch.zeros(1, 3)
    mask = torch.ones(1, 3)
    adv, ret = ppo.advantages(r, v, mask, gamma=1.0, lam=0.5)
    # gamma 1, V 0: delta = r; A_2 = 3, A_1 = 0 + 0.5 * 3 = 1.5, A_0 = 0.5 * 1.5 = 0.75; R = A + V = A
    near(ret, [[0.75, 1.5, 3.0]])
    # whitened: mean 1.75, unbiased variance (1 + 0.0625 + 1.5625) / 2 = 1.3125
    s = math.sqrt(1.3125)
    near(adv, [[-1 / s, -0.25 / s, 1.25 / s]])


# Four tokens that meet every case of the clipped objective (eps = 0.2), and one masked token:
#   A    rho   -A rho   -A clip(rho)   max (the pessimistic loss)
#   +1   1.5   -1.5     -1.2           -1.2   clipped: no gain from pushing rho past 1 + eps
#   -1   0.5   +0.5     +0.8           +0.8   clipped: no gain from pushing rho below 1 - eps
#   +2   0.5   -1.0     -1.6           -1.0   unclipped: a ratio that went the wrong way is not excused
#   -1   1.5   +1.5     +1.2           +1.5   unclipped
# L_pi = (-1.2 + 0.8 - 1.0 + 1.5) / 4 = 0.025
ADV = torch.tensor([[1.0, -1.0, 2.0, -1.0, 5.0]])
RHO = torch.tensor([[1.5, 0.5, 0.5, 1.5, 3.0]])
MASK = torch.tensor([[1.0, 1, 1, 1, 0]])


def test_policy_loss_is_the_pessimistic_clipped_surrogate(ppo):
    old = torch.full((1, 5), -2.0)
    logp = (old + RHO.log()).requires_grad_()
    loss, ratio = ppo.policy_loss(logp, old, ADV, MASK, clip_range=0.2)
    assert loss.item() == pytest.approx(0.025, abs=1e-6)
    near(ratio[MASK.bool()], [1.5, 0.5, 0.5, 1.5])
    # d/dlogp of -A rho is -A rho; the clipped terms are constant; each token weighs 1/4:
    # (0, 0, -2 * 0.5 / 4, 1 * 1.5 / 4, masked 0) = (0, 0, -0.25, 0.375, 0)
    loss.backward()
    near(logp.grad, [[0, 0, -0.25, 0.375, 0]])


def test_value_loss_is_the_larger_of_the_clipped_and_unclipped_errors(ppo):
    v = torch.tensor([[2.0, 2.0, 9.0]])
    old_v = torch.tensor([[1.0, 1.0, 0.0]])
    returns = torch.tensor([[3.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1, 0]])
    # eps_v = 0.5: V_clip = 1 + clip(1, -0.5, 0.5) = 1.5 for both tokens
    # token 1: (2 - 3)^2 = 1 vs (1.5 - 3)^2 = 2.25 -> 2.25; token 2: (2 - 0)^2 = 4 vs 1.5^2 = 2.25 -> 4
    # L_V = 1/2 * (2.25 + 4) / 2 = 1.5625
    assert ppo.value_loss(v, old_v, returns, mask, 0.5).item() == pytest.approx(1.5625)
    # unclipped: 1/2 * (1 + 4) / 2 = 1.25
    assert ppo.value_loss(v, old_v, returns, mask, None).item() == pytest.approx(1.25)


# ============================================================================================
# One whole ppo_step on tiny tensors: rollout, KL in the reward, GAE, whitening, both losses,
# the gradients they send, and the logged diagnostics
# ============================================================================================
# Two completions of token 0 over a 2-token vocabulary: row 0 has 3 tokens, row 1 has 2 and one
# padding position (t = 2) whose values are deliberately not 0 (the step must mask them).
STEP_MASK = [[1, 1, 1], [1, 1, 0]]
P_OLD = 0.5  # p(token 0) in the rollout pass (eval mode)
P_NEW = [[0.7, 0.3, 0.55], [0.5, 0.75, 0.5]]  # ... and in the training pass (train mode)
REF_P = [[0.25, 0.5, 1.0], [0.5, 0.125, 0.5]]  # under pi_0
V_OLD = [[0.5, 0.0, 1.0], [0.25, 0.5, 7.0]]
V_NEW = [[1.0, 0.5, 0.0], [0.1, 1.0, 3.0]]
PROXY, UTILITY = [1.0, 2.0], [0.5, 0.0]
BETA, GAMMA, LAM, EPS, VF_COEF, TEMP = 0.5, 0.9, 0.5, 0.2, 0.1, 2.0
L2 = math.log(2)

# log pi - log pi_0 = log(0.5 / ref): row 0 (ln 2, 0, -ln 2), row 1 (0, ln 4)
# k1 = r; k3 = e^-r - 1 + r: ln 2 -> ln 2 - 0.5, -ln 2 -> 1 - ln 2, ln 4 -> ln 4 - 0.75
# rewards -beta kl_t, the proxy on the last token:
#   k1: row 0 (-0.5 ln 2, 0, 0.5 ln 2 + 1) = (-0.346574, 0, 1.346574); row 1 (0, -ln 2 + 2) = (0, 1.306853)
# GAE (gamma 0.9, lam 0.5, V after the last token 0), k1:
#   row 1: A_1 = 1.306853 - 0.5 = 0.806853;  A_0 = 0 + 0.9 * 0.5 - 0.25 + 0.45 * 0.806853 = 0.563084
#   row 0: A_2 = 1.346574 - 1 = 0.346574;  A_1 = 0.9 - 0 + 0.45 * 0.346574 = 1.055958
#          A_0 = -0.346574 + 0 - 0.5 + 0.45 * 1.055958 = -0.371392
#   returns R = A + V_old: (0.128608, 1.055958, 1.346574), (0.813084, 1.306853)
# whitened over the 5 completion tokens (mean 0.480221, Bessel std 0.544548):
#   W = (-1.562560, 1.056394, -0.245210), (0.152050, 0.599326)
# rho = P_NEW / 0.5 = (1.4, 0.6, 1.1), (1.0, 1.5): three of five outside 1 +- 0.2 (clipfrac 0.6)
# L_pi = mean max(-W rho, -W clip(rho)) = (2.187584 + 0.633836 + 0.269731 - 0.152050 - 0.719192) / 5
# L_V = 1/2 mean (V_new - R)^2 = (0.759324 + 0.309089 + 1.813262 + 0.508489 + 0.094159) / 10 = 0.348432
# loss = L_pi + 0.1 L_V = 0.190447 + 0.034843 = 0.225291
# entropy: mean binary entropy of P_NEW; approx KL: mean (rho - 1) - ln rho
# kl (mean sequence k1) = (0 + ln 4) / 2 = ln 2; kl/k1 = ln 4 / 5; kl/k3 = (ln 2 - 0.5 + 1 - ln 2 + ln 4 - 0.75) / 5 = (ln 4 - 0.25) / 5
# gradients (one minibatch, 5 tokens): d loss / d V_t = 0.1 (V_new - R) / 5;
# d loss / d theta_t[token 0] = dL_pi/dlogp_t * (1 - p_t) / T with dL_pi/dlogp_t = -W rho / 5 where
# the unclipped term is the larger, else 0 (row 1 t = 1: rho 1.5, W > 0: clipped, no gradient)
STEP_EXPECTED = {
    "k1": {
        "metrics": {
            "policy": 0.190447,
            "value": 0.348432,
            "total": 0.225291,
        },
        "grad_v": [[0.017428, -0.011119, -0.026931], [-0.014262, -0.006137, 0.0]],
        "grad_theta": [[0.065628, -0.044369, 0.012138], [-0.007603, 0.0, 0.0]],
    },
    "k3": {
        # k3 rewards: row 0 (-0.096574, 0, 0.846574), row 1 (0, 1.681853); A (-0.222642, 0.830958,
        # -0.153426), (0.731834, 1.181853); W (-1.110120, 0.569510, -0.999777), (0.411488, 1.128900)
        "metrics": {
            "policy": 0.109210,
            "value": 0.259099,
            "total": 0.135120,
        },
        "grad_v": [[0.014453, -0.006619, -0.016931], [-0.017637, -0.013637, 0.0]],
        "grad_theta": [[0.046625, -0.023919, 0.049489], [-0.020574, 0.0, 0.0]],
    },
}
# binary entropies H(0.7) = H(0.3) = 0.610864, H(0.55) = 0.688139, H(0.5) = 0.693147, H(0.75) = 0.562335
ENTROPY = (2 * 0.610864 + 0.688139 + 0.693147 + 0.562335) / 5  # 0.633070
# (rho - 1) - ln rho: 0.063528, 0.110826, 0.004690, 0, 0.094535
APPROX_KL = (0.063528 + 0.110826 + 0.004690 + 0 + 0.094535) / 5  # 0.054716


class TwoTokenPolicy(torch.nn.Module):
    """PolicyWithValue's interface, forward(ids, attention_mask, n_prompt) -> (logits, values) of
    the completion tokens, with p(token 0) = P_OLD in eval mode and P_NEW (trainable) in train
    mode. Logits are TEMP * log p, so the step's division by the temperature gives log p back.
    A row is recognized by its prompt token (ppo_step shuffles the minibatch rows)."""

    def __init__(self, p_old: float = P_OLD):
        super().__init__()
        self.p_old = p_old
        p = torch.tensor(P_NEW)
        self.theta = torch.nn.Parameter(TEMP * torch.stack([p.log(), (1 - p).log()], -1))  # (B, T, 2)
        self.v = torch.nn.Parameter(torch.tensor(V_NEW))

    def forward(self, ids, attention_mask, n_prompt):
        rows = ids[:, 0]
        if not self.training:
            logits = TEMP * torch.tensor([math.log(self.p_old), math.log(1 - self.p_old)])
            return logits.expand(len(rows), 3, 2).clone(), torch.tensor(V_OLD)[rows]
        return self.theta[rows], self.v[rows]


class GradientRecorder:
    """The optimizer's place in ppo_step: records the gradients it would apply, changes nothing."""

    def __init__(self, model):
        self.model, self.grads = model, []

    def zero_grad(self, set_to_none=True):
        self.model.zero_grad(set_to_none=set_to_none)

    def step(self):
        self.grads.append(
            {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in self.model.named_parameters()}
        )


class Rollout(types.SimpleNamespace):
    def __len__(self):
        return len(self.response)


def run_ppo_step(ppo, estimator: str, clamp=None, clip_range_value=None, max_grad_norm=None, p_old=P_OLD):
    """One ppo_step of module `ppo` on the tensors above: (metrics, recorded gradients, KL controller)."""
    from contextlib import contextmanager

    import numpy as np

    mask = torch.tensor(STEP_MASK)
    response = torch.zeros(2, 3, dtype=torch.long)
    ids = torch.cat([torch.tensor([[0], [1]]), response], 1)
    ro = Rollout(
        response=response,
        response_mask=mask,
        input_ids=ids,
        attention_mask=torch.cat([torch.ones(2, 1), mask], 1).long(),
        n_prompt=1,
    )
    algo = types.SimpleNamespace(
        batch_prompts=2,
        samples_per_prompt=1,
        minibatch=2,
        ppo_epochs=1,
        gamma=GAMMA,
        lam=LAM,
        clip_range=EPS,
        clip_range_value=clip_range_value,
        vf_coef=VF_COEF,
        max_grad_norm=max_grad_norm,
        kl=types.SimpleNamespace(estimator=estimator, clamp=clamp),
    )
    cfg = types.SimpleNamespace(algo=algo, sampling=types.SimpleNamespace(temperature=TEMP))
    acc = types.SimpleNamespace(
        device=torch.device("cpu"),
        reduce=lambda t, op: t,
        backward=lambda loss: loss.backward(),
        clip_grad_norm_=lambda params, most: torch.nn.utils.clip_grad_norm_(list(params), most),
    )
    sess = types.SimpleNamespace(
        ctx=types.SimpleNamespace(cfg=cfg),
        accelerator=acc,
        scorer=None,
        train_prompts=lambda n, step: ["x"] * n,
        gather_array=lambda a: np.asarray(a, dtype=np.float64),
    )
    ref_logp = torch.tensor(REF_P).log()
    ref = types.SimpleNamespace(token_logprobs=lambda ids, am, n_prompt, temp: ref_logp[ids[:, 0]])

    @contextmanager
    def unwrapped(acc, model):
        yield types.SimpleNamespace(lm=None)

    fakes = {
        "unwrapped_for_generation": unwrapped,
        "sample_rollout": lambda lm, tok, prompts, n, sampling, with_logprobs: ro,
        "score_rollout": lambda scorer, ro: {
            "proxy": np.array(PROXY),
            "utility": np.array(UTILITY),
            "clipped_fraction": None,
        },
    }
    saved = {k: getattr(ppo, k) for k in fakes}
    model = TwoTokenPolicy(p_old)
    opt = GradientRecorder(model)
    kl_ctl = ppo.KLController(BETA)
    try:
        for k, f in fakes.items():
            setattr(ppo, k, f)
        metrics = ppo.ppo_step(0, sess, model, ref, None, opt, kl_ctl)
    finally:
        for k, f in saved.items():
            setattr(ppo, k, f)
    return metrics, opt.grads, kl_ctl


def check_one_ppo_step(ppo, estimator: str):
    from goodhart.eval import metrics as M

    metrics, grads, kl_ctl = run_ppo_step(ppo, estimator)
    want = STEP_EXPECTED[estimator]
    assert len(grads) == 1, "one epoch of one minibatch applies one update"
    near(grads[0]["v"], want["grad_v"], atol=1e-5)  # the value head learns the returns, through vf_coef
    near(grads[0]["theta"][..., 0], want["grad_theta"], atol=1e-5)  # the policy learns the whitened advantages
    logged = {
        M.LOSS_POLICY: want["metrics"]["policy"],
        M.LOSS_VALUE: want["metrics"]["value"],
        M.LOSS_TOTAL: want["metrics"]["total"],
        M.ENTROPY: ENTROPY,
        M.APPROX_KL: APPROX_KL,
        M.CLIPFRAC: 0.6,
        M.PROXY: 1.5,
        M.UTILITY: 0.25,
        M.ERROR: 1.25,
        M.KL: L2,  # the training batch's mean sequence k1, whatever estimator is in the reward
        M.KL_K1: 4 * L2 / 5 / 2,  # ln 4 / 5
        M.KL_K3: (2 * L2 - 0.25) / 5,
        M.KL_COEF: BETA,
        M.OBJECTIVE: 1.5 - BETA * L2,
        M.LENGTH: 2.5,
    }
    for key, value in logged.items():
        assert metrics[key] == pytest.approx(value, abs=2e-6), f"{key}: {metrics[key]} != {value}"
    assert M.VALUE_CLIPFRAC not in metrics and M.GRAD_NORM not in metrics and M.KL_CLAMPED not in metrics
    assert kl_ctl.coef == BETA  # a fixed coefficient stays put
    assert 0 <= metrics[M.STEP_SECONDS] < 60


def test_one_ppo_step_with_k1_in_the_reward(ppo):
    check_one_ppo_step(ppo, "k1")


def test_one_ppo_step_with_k3_in_the_reward(ppo):
    check_one_ppo_step(ppo, "k3")


def test_one_ppo_step_with_the_kl_clamp_value_clip_and_grad_norm(ppo):
    """k1 with algo.kl.clamp = 0.5, clip_range_value = 0.3, max_grad_norm set (1e6: measured, not binding).
    kl_t clamped to (0.5, 0, -0.5), (0, 0.5): 3 of 5 tokens clamped; rewards (-0.25, 0, 1.25), (0, 1.75)
    row 1: A_1 = 1.75 - 0.5 = 1.25, A_0 = 0.45 - 0.25 + 0.45 * 1.25 = 0.7625
    row 0: A_2 = 1.25 - 1 = 0.25, A_1 = 0.9 + 0.45 * 0.25 = 1.0125, A_0 = -0.25 - 0.5 + 0.45 * 1.0125 = -0.294375
    R = (0.205625, 1.0125, 1.25), (1.0125, 1.75); V_new - V_old = (0.5, 0.5, -1), (-0.15, 0.5): 4 of 5 past 0.3
    V_clip = (0.8, 0.3, 0.7), (0.1, 0.8); per token the larger of (V - R)^2, (V_clip - R)^2:
    0.631032 (unclipped), 0.507656 (clipped: no gradient), 1.5625 (unclipped), 0.832656 (inside the clip), 0.9025 (clipped)
    L_V = 1/2 * 4.436344 / 5 = 0.443634; L_pi as in the k1 step, with these advantages"""
    from goodhart.eval import metrics as M

    metrics, grads, _ = run_ppo_step(ppo, "k1", clamp=0.5, clip_range_value=0.3, max_grad_norm=1e6)
    near(grads[0]["v"], [[0.015888, 0.0, -0.025], [-0.01825, 0.0, 0.0]], atol=1e-5)
    near(grads[0]["theta"][..., 0], [[0.060250, -0.028171, 0.027600], [-0.013401, 0.0, 0.0]], atol=1e-5)
    logged = {
        M.LOSS_POLICY: 0.137439,
        M.LOSS_VALUE: 0.443634,
        M.LOSS_TOTAL: 0.181803,
        M.KL_CLAMPED: 0.6,
        M.VALUE_CLIPFRAC: 0.8,
        M.GRAD_NORM: 0.109273,  # sqrt(sum of squared gradients; theta's two columns are opposite)
        M.KL: L2,  # the measurement is not clamped
        M.CLIPFRAC: 0.6,
    }
    for key, value in logged.items():
        assert metrics[key] == pytest.approx(value, abs=2e-6), f"{key}: {metrics[key]} != {value}"


def test_the_rollout_log_probs_are_the_tempered_policys(ppo):
    """Sampled at temperature tau, the rollout policy is softmax(logits / tau); its log-probs (the
    ratio's denominator and the KL's policy term) must be divided by tau too. P_OLD = 0.5 above
    reads the same either way (two equal logits), so here the rollout pass has p(token 0) = 0.8:
    logits (2 ln 0.8, 2 ln 0.2) / TEMP = (ln 0.8, ln 0.2); undivided, softmax gives
    0.64 / 0.68 = 0.941 instead.
    kl = mean sequence k1 = [ln(0.8 / 0.25) + ln(0.8 / 0.5) + ln(0.8 / 1)] / 2 + [ln(0.8 / 0.5) + ln(0.8 / 0.125)] / 2
       = ln(4.096 * 10.24) / 2 = 1.868156;  kl/k1 = ln(4.096 * 10.24) / 5 = 0.747263
    approx KL uses rho = P_NEW / 0.8: (0.875, 0.375, 0.6875), (0.625, 0.9375); mean (rho - 1) - ln rho
    = (0.008531 + 0.355829 + 0.062193 + 0.095004 + 0.002039) / 5 = 0.104719"""
    from goodhart.eval import metrics as M

    metrics, _, _ = run_ppo_step(ppo, "k1", p_old=0.8)
    assert metrics[M.KL] == pytest.approx(math.log(4.096 * 10.24) / 2, abs=1e-5)
    assert metrics[M.KL_K1] == pytest.approx(math.log(4.096 * 10.24) / 5, abs=1e-5)
    assert metrics[M.APPROX_KL] == pytest.approx(0.104719, abs=1e-5)


# ============================================================================================
# Mutations: each must fail at least one pinned test
# ============================================================================================
def test_value_clip_binds_both_ways(ppo):
    # V fell by 1 from V_old = 1, eps_v = 0.5: V_clip = 1 + clip(-1, -0.5, 0.5) = 0.5; R = -1
    # (0 + 1)^2 = 1 vs (0.5 + 1)^2 = 2.25 -> 2.25; L_V = 1/2 * 2.25 = 1.125
    v, old_v, returns, mask = torch.tensor([[0.0]]), torch.tensor([[1.0]]), torch.tensor([[-1.0]]), torch.ones(1, 1)
    assert ppo.value_loss(v, old_v, returns, mask, 0.5).item() == pytest.approx(1.125)


PINNED = [
    test_token_rewards_penalize_kl_on_every_token_and_add_the_score_at_the_end,
    test_gae_matches_a_hand_computation,
    test_whiten_over_the_masked_tokens,
    test_advantages_are_whitened_gae_and_returns_are_not,
    test_policy_loss_is_the_pessimistic_clipped_surrogate,
    test_value_loss_is_the_larger_of_the_clipped_and_unclipped_errors,
    test_one_ppo_step_with_k1_in_the_reward,
    test_one_ppo_step_with_k3_in_the_reward,
    test_one_ppo_step_with_the_kl_clamp_value_clip_and_grad_norm,
    test_value_clip_binds_both_ways,
    test_the_rollout_log_probs_are_the_tempered_policys,
]
PPO = "goodhart.pipeline.optimizers.ppo"
KL = "goodhart.pipeline.train.kl"

# (module, [(what to find, exactly once; what to put instead), ...]): the mutation list, kept here
MUTATIONS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "max -> min in the clipped objective": (
        PPO,
        [
            ("masked_mean(torch.max(unclipped, clipped), mask)", "masked_mean(torch.min(unclipped, clipped), mask)"),
        ],
    ),
    "no ratio clip": (
        PPO,
        [("clipped = -adv * ratio.clamp(1 - clip_range, 1 + clip_range)", "clipped = -adv * ratio")],
    ),
    "no value clip": (PPO, [("(v - old_v).clamp(-clip_range_value, clip_range_value)", "(v - old_v)")]),
    "no advantage whitening": (PPO, [("return whiten(adv, mask, reduce_sum), returns", "return adv, returns")]),
    "GAE lambda ignored": (PPO, [("running = delta + gamma * lam * running", "running = delta + gamma * running")]),
    "KL sign flipped": (PPO, [("rewards = -beta * kl_t * mask", "rewards = beta * kl_t * mask")]),
    # ---- ppo_step
    "whitening over padding too (a mask of ones into advantages)": (
        PPO,
        [
            (
                "advantages(rewards, old_v, mask, algo.gamma",
                "advantages(rewards, old_v, torch.ones_like(mask), algo.gamma",
            ),
        ],
    ),
    "entropy and approx-KL diagnostics swapped": (
        PPO,
        [
            ("stats[M.ENTROPY].append(masked_mean(entropy_of", "stats[M.APPROX_KL].append(masked_mean(entropy_of"),
            ("stats[M.APPROX_KL].append(masked_mean((ratio - 1)", "stats[M.ENTROPY].append(masked_mean((ratio - 1)"),
        ],
    ),
    "value loss dropped": (PPO, [("loss = pg_loss + algo.vf_coef * vf_loss", "loss = pg_loss")]),
    "gamma and lambda swapped": (PPO, [("algo.gamma, algo.lam,", "algo.lam, algo.gamma,")]),
    "policy trained on returns": (
        PPO,
        [("old_logp[mb], adv[mb], m, algo.clip_range)", "old_logp[mb], returns[mb], m, algo.clip_range)")],
    ),
    "KL direction flipped in the step": (
        PPO,
        [("per_token_kl(old_logp, ref_logp, mask,", "per_token_kl(ref_logp, old_logp, mask,")],
    ),
    "KL coefficient read after the update": (PPO, [("    beta = kl_ctl.coef\n", "    beta = 1.0\n")]),
    "rollout log-probs without the temperature": (
        PPO,
        [("old_logp.append(logprobs_of(logits.float() / temp,", "old_logp.append(logprobs_of(logits.float(),")],
    ),
    "training log-probs without the temperature": (
        PPO,
        [("logits = logits.float() / temp\n", "logits = logits.float()\n")],
    ),
    # ---- train/kl.py
    "KL direction flipped in kl.py": (KL, [("r = (logp - ref_logp) * mask", "r = (ref_logp - logp) * mask")]),
    "k3 of the wrong direction": (KL, [("(torch.expm1(-r) + r) * mask", "(torch.expm1(r) - r) * mask")]),
    "EOS left out of the completion": (
        KL,
        [("return (eos_before == 0).long()", "return (eos_before + is_eos == 0).long()")],
    ),
    "kl is the mean k3": (KL, [('M.KL: float(np.mean(seq["k1"]))', 'M.KL: float(np.mean(seq["k3"]))')]),
    "per-token k1 over sequences, not tokens": (
        KL,
        [('M.KL_K1: float(np.sum(seq["k1"]) / n)', 'M.KL_K1: float(np.mean(seq["k1"]))')],
    ),
    "log-probs unnormalized": (KL, [("squeeze(-1) - torch.logsumexp(logits, -1)", "squeeze(-1)")]),
    "the completion slice off by one": (KL, [("return x[:, n_prompt - 1 : -1]", "return x[:, n_prompt:]")]),
    "temperature ignored": (
        KL,
        [
            (
                "return predicting_completion(logits, n_prompt).float() / temperature",
                "return predicting_completion(logits, n_prompt).float()",
            )
        ],
    ),
    "controller error unclipped": (KL, [("np.clip(kl / self.target - 1.0, -0.2, 0.2)", "(kl / self.target - 1.0)")]),
    "masked mean over every position": (
        KL,
        [("return (x * mask).sum() / mask.sum().clamp(min=1)", "return (x * mask).mean()")],
    ),
}


def edited(name: str, edits=(), deps: dict[str, types.ModuleType] | None = None) -> types.ModuleType:
    """Module `name` with `edits` applied to its source, executed as a fresh module (the real one
    is left untouched); `deps` stand in for the modules of those names while it imports."""
    import importlib
    import sys

    path = Path(importlib.import_module(name).__file__)
    source = path.read_text()
    for find, replace in edits:
        assert source.count(find) == 1, f"mutation target not found exactly once in {path}: {find!r}"
        source = source.replace(find, replace)
    module = types.ModuleType(name.rsplit(".", 1)[-1] + "_mutant")
    module.__file__ = str(path)
    saved = {k: sys.modules[k] for k in deps or {}}
    try:
        sys.modules.update(deps or {})
        exec(compile(source, str(path), "exec"), module.__dict__)
    finally:
        sys.modules.update(saved)
    return module


def kl_tests(kl: types.ModuleType):
    """tests/test_kl.py's tests that need no fixture, run against `kl` in place of train/kl.py."""
    import inspect
    import sys

    source = (Path(__file__).parent / "test_kl.py").read_text()
    module = types.ModuleType("test_kl_on_a_mutant")
    saved = sys.modules[KL]
    try:
        sys.modules[KL] = kl
        exec(compile(source, "test_kl.py", "exec"), module.__dict__)
    finally:
        sys.modules[KL] = saved
    return [f for n, f in vars(module).items() if n.startswith("test_") and not inspect.signature(f).parameters]


def failures(module: str, edits) -> list[str]:
    """Names of the pinned tests that fail on the mutant (module + edits)."""
    if module == KL:
        kl = edited(KL, edits)
        ppo = edited(PPO, deps={KL: kl})
        tests = [(t, ()) for t in kl_tests(kl)] + [(t, (ppo,)) for t in PINNED]
    else:
        ppo = edited(PPO, edits)
        tests = [(t, (ppo,)) for t in PINNED]
    caught = []
    for test, args in tests:
        try:
            test(*args)
        except AssertionError:
            caught.append(test.__name__)
    return caught


def test_the_pinned_tests_pass_on_the_unmutated_source_run_the_same_way():
    assert failures(PPO, []) == [] and failures(KL, []) == []  # exec'd source, no edit: every test passes
    assert len(kl_tests(edited(KL))) >= 6


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_mutant_fails_a_pinned_test(name):
    module, edits = MUTATIONS[name]
    assert failures(module, edits), f"mutant '{name}' passes every pinned test"
