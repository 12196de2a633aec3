"""The PPO loss pinned: each term of pipeline/optimizers/ppo.py on tiny tensors, against numbers
worked out by hand in the comments; then six one-line mutations of that source, each of which
must fail at least one of these tests (so "the tests would notice a broken loss" stays checked).

Every pinned test takes the module under test as its argument `ppo` (the real one via the
fixture; a mutant built from edited source in test_each_mutant_fails_a_pinned_test)."""

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


PINNED = [
    test_token_rewards_penalize_kl_on_every_token_and_add_the_score_at_the_end,
    test_gae_matches_a_hand_computation,
    test_whiten_over_the_masked_tokens,
    test_advantages_are_whitened_gae_and_returns_are_not,
    test_policy_loss_is_the_pessimistic_clipped_surrogate,
    test_value_loss_is_the_larger_of_the_clipped_and_unclipped_errors,
]

# One-line mutations of pipeline/optimizers/ppo.py: (what to find, exactly once; what to put instead)
MUTATIONS = {
    "max -> min in the clipped objective": (
        "masked_mean(torch.max(unclipped, clipped), mask)",
        "masked_mean(torch.min(unclipped, clipped), mask)",
    ),
    "no ratio clip": (
        "clipped = -adv * ratio.clamp(1 - clip_range, 1 + clip_range)",
        "clipped = -adv * ratio",
    ),
    "no value clip": (
        "(v - old_v).clamp(-clip_range_value, clip_range_value)",
        "(v - old_v)",
    ),
    "no advantage whitening": (
        "return whiten(adv, mask, reduce_sum), returns",
        "return adv, returns",
    ),
    "GAE lambda ignored": (
        "running = delta + gamma * lam * running",
        "running = delta + gamma * running",
    ),
    "KL sign flipped": (
        "rewards = -beta * kl_t * mask",
        "rewards = beta * kl_t * mask",
    ),
}


def mutant(find: str, replace: str) -> types.ModuleType:
    """ppo.py with one edit, executed as a fresh module (the real one is left untouched)."""
    from goodhart.pipeline.optimizers import ppo

    path = Path(ppo.__file__)
    source = path.read_text()
    assert source.count(find) == 1, f"mutation target not found exactly once in {path}: {find!r}"
    module = types.ModuleType("ppo_mutant")
    module.__file__ = str(path)
    exec(compile(source.replace(find, replace), str(path), "exec"), module.__dict__)
    return module


def test_the_pinned_tests_pass_on_the_unmutated_source_run_the_same_way():
    clean = mutant("import time\n", "import time\n")  # the identity edit: exec'd source must pass
    for test in PINNED:
        test(clean)


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_mutant_fails_a_pinned_test(name):
    bad = mutant(*MUTATIONS[name])
    caught = []
    for test in PINNED:
        try:
            test(bad)
        except AssertionError:
            caught.append(test.__name__)
    assert caught, f"mutant '{name}' passes every pinned PPO loss test"
