"""KL estimates, KL-penalised per-token rewards and the KL controllers."""

from __future__ import annotations

import pytest
import torch

from llmpost.rl.kl import (
    AdaptiveKLController,
    FixedKLController,
    kl_controller,
    kl_estimate,
    kl_penalized_rewards,
)
from llmpost.rl.scaling import RunningMoments, scale_scores


def test_k1_and_k3_are_unbiased_estimates_of_the_exact_kl():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    q = torch.tensor([0.25, 0.25, 0.25, 0.25])
    exact = (p * (p / q).log()).sum().item()
    g = torch.Generator().manual_seed(0)
    samples = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logp, logq = p.log()[samples], q.log()[samples]
    assert kl_estimate(logp, logq, "k1").mean().item() == pytest.approx(exact, rel=0.03)
    k3 = kl_estimate(logp, logq, "k3")
    assert k3.mean().item() == pytest.approx(exact, rel=0.03)
    assert (k3 >= 0).all()
    assert torch.allclose(kl_estimate(logp, logq, "k2"), 0.5 * (logp - logq) ** 2)
    with pytest.raises(ValueError):
        kl_estimate(logp, logq, "k4")


def test_identical_policies_have_zero_kl_under_every_estimator():
    logp = -torch.rand(3, 5)
    for estimator in ("k1", "k2", "k3"):
        assert kl_estimate(logp, logp.clone(), estimator).abs().max() == 0


def test_rewards_charge_kl_on_response_tokens_and_pay_the_score_at_the_last():
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0], [0.4, 9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]]).float()
    rewards = kl_penalized_rewards(torch.tensor([1.0, -2.0]), kl, mask, beta=0.5)
    expected = torch.tensor([[-0.05, -0.1, -0.15 + 1.0, 0.0], [-0.2 - 2.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(rewards, expected)


def test_a_row_without_response_tokens_gets_no_reward():
    """A response left out of the update (all of its mask 0) carries nothing, not even its score."""
    kl = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    mask = torch.tensor([[1, 1], [0, 0]]).float()
    rewards = kl_penalized_rewards(torch.tensor([1.0, 5.0]), kl, mask, beta=0.5)
    assert torch.allclose(rewards, torch.tensor([[-0.05, -0.1 + 1.0], [0.0, 0.0]]))


def test_adaptive_controller_follows_ziegler_et_al():
    ctl = AdaptiveKLController(beta=0.1, target=6.0, horizon=10000)
    ctl.update(current_kl=9.0, n_steps=100)  # error 0.5, clipped to 0.2
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 100 / 10000))
    ctl = AdaptiveKLController(beta=0.1, target=6.0, horizon=10000)
    ctl.update(current_kl=5.4, n_steps=100)  # error -0.1
    assert ctl.value == pytest.approx(0.1 * (1 - 0.1 * 100 / 10000))
    fixed = FixedKLController(0.1)
    fixed.update(100.0, 100)
    assert fixed.value == 0.1
    assert isinstance(kl_controller(0.1, None, 10), FixedKLController)
    assert isinstance(kl_controller(0.1, 3.0, 10), AdaptiveKLController)


def test_running_moments_match_the_pooled_statistics():
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(n, generator=g) * 3 + 2 for n in (5, 17, 1, 40)]
    moments = RunningMoments()
    for b in batches:
        moments.update(b)
    pooled = torch.cat(batches).double()
    assert moments.mean == pytest.approx(pooled.mean().item(), abs=1e-9)
    assert moments.std == pytest.approx(pooled.std(unbiased=False).item(), abs=1e-9)
    scaled = scale_scores(torch.tensor([moments.mean + moments.std, 100.0]), moments, clip=3.0)
    assert scaled.tolist() == pytest.approx([1.0, 3.0], abs=1e-5)
