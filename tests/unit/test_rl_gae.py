"""GAE and whitening against straightforward reference computations, one sequence at a time."""

from __future__ import annotations

import pytest
import torch

from llmpost.rl.gae import gae_advantages
from llmpost.rl.masked import masked_mean, masked_var, whiten


def reference_gae(rewards: list[float], values: list[float], gamma: float, lam: float) -> tuple[list[float], list[float]]:
    """The textbook recursion on one unpadded episode, in plain Python."""
    n = len(rewards)
    advantages = [0.0] * n
    running = 0.0
    for t in reversed(range(n)):
        next_value = values[t + 1] if t + 1 < n else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    return advantages, [a + v for a, v in zip(advantages, values, strict=True)]


def padded_batch(lengths: list[int], width: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(len(lengths), width, generator=g)
    values = torch.randn(len(lengths), width, generator=g)
    mask = torch.zeros(len(lengths), width)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return rewards, values, mask


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.99, 0.9), (1.0, 1.0), (0.9, 0.0)])
def test_gae_matches_the_recursion_per_sequence(gamma, lam):
    lengths = [5, 1, 7, 3]
    rewards, values, mask = padded_batch(lengths, width=7)
    advantages, returns = gae_advantages(rewards, values, mask, gamma, lam)
    for i, n in enumerate(lengths):
        ref_adv, ref_ret = reference_gae(rewards[i, :n].tolist(), values[i, :n].tolist(), gamma, lam)
        assert advantages[i, :n].tolist() == pytest.approx(ref_adv, abs=1e-5)
        assert returns[i, :n].tolist() == pytest.approx(ref_ret, abs=1e-5)
        assert advantages[i, n:].abs().sum() == 0 and returns[i, n:].abs().sum() == 0


def test_gae_ignores_whatever_sits_in_the_padding():
    rewards, values, mask = padded_batch([4, 2], width=6)
    clean = gae_advantages(rewards, values, mask, 1.0, 0.95)
    noisy_rewards, noisy_values = rewards.clone(), values.clone()
    noisy_rewards[mask == 0] = 1e3
    noisy_values[mask == 0] = -1e3
    noisy = gae_advantages(noisy_rewards, noisy_values, mask, 1.0, 0.95)
    assert torch.allclose(clean[0], noisy[0]) and torch.allclose(clean[1], noisy[1])


def test_lambda_one_gives_monte_carlo_returns_minus_baseline():
    rewards = torch.tensor([[0.0, -0.1, 0.2, 1.0]])
    values = torch.tensor([[0.3, 0.1, -0.2, 0.5]])
    mask = torch.ones_like(rewards)
    advantages, returns = gae_advantages(rewards, values, mask, gamma=1.0, lam=1.0)
    reward_to_go = torch.tensor([[1.1, 1.1, 1.2, 1.0]])
    assert torch.allclose(returns, reward_to_go)
    assert torch.allclose(advantages, reward_to_go - values)


def test_whiten_uses_only_masked_entries_and_keeps_padding_zero():
    x = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 5.0, -99.0, -99.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]).float()
    real = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    expected = (real - real.mean()) / real.std(unbiased=True)
    out = whiten(x, mask)
    assert out[mask.bool()].tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    assert out[~mask.bool()].abs().sum() == 0
    assert masked_mean(x, mask).item() == pytest.approx(3.0)
    assert masked_var(x, mask).item() == pytest.approx(real.var(unbiased=True).item())


def test_whiten_without_shifting_keeps_the_mean():
    x = torch.tensor([[2.0, 4.0, 6.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    out = whiten(x, mask, shift_mean=False)
    assert masked_mean(out, mask).item() == pytest.approx(4.0, abs=1e-5)
    assert masked_var(out, mask).item() == pytest.approx(1.0, abs=1e-4)
