"""Log-probs and entropies a few positions at a time: the plain formulas' values and gradients, less memory."""

from __future__ import annotations

import pytest
import torch

from llmpost.rl.logprobs import logprobs_and_entropy, token_logprobs


def plain(logits: torch.Tensor, tokens: torch.Tensor, temperature: float):
    """The formulas written out over the whole `[B, T, V]` tensor (what PPO computed before)."""
    log_p = torch.log_softmax(logits.double() / temperature, dim=-1)
    return log_p.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), -(log_p.exp() * log_p).sum(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk_bytes", [1, 3 * 11 * 4, 2**30], ids=["one-position", "three-positions", "whole-rows"])
def test_values_and_gradients_are_the_plain_formulas(temperature, chunk_bytes):
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 5, 11, generator=g, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(0, 11, (3, 5), generator=g)
    weights = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)

    logprobs, entropy = logprobs_and_entropy(logits, tokens, temperature, entropy=True, chunk_bytes=chunk_bytes)
    expected_logprobs, expected_entropy = plain(logits, tokens, temperature)
    torch.testing.assert_close(logprobs, expected_logprobs)
    torch.testing.assert_close(entropy, expected_entropy)

    # a loss that weighs both, as PPO's does (policy term and entropy bonus)
    (grad,) = torch.autograd.grad((weights[0] * logprobs + weights[1] * entropy).sum(), logits)
    (expected,) = torch.autograd.grad((weights[0] * expected_logprobs + weights[1] * expected_entropy).sum(), logits)
    torch.testing.assert_close(grad, expected)
    assert torch.autograd.gradcheck(
        lambda x: logprobs_and_entropy(x, tokens, temperature, entropy=True, chunk_bytes=chunk_bytes), (logits,))


def test_bf16_logits_are_read_in_float32_and_get_a_bf16_gradient():
    g = torch.Generator().manual_seed(5)
    logits = (4 * torch.randn(2, 4, 50, generator=g)).to(torch.bfloat16).requires_grad_()
    tokens = torch.randint(0, 50, (2, 4), generator=g)
    logprobs = token_logprobs(logits, tokens, 0.9)
    assert logprobs.dtype == torch.float32
    torch.testing.assert_close(logprobs, plain(logits.float(), tokens, 0.9)[0].float(), atol=1e-5, rtol=1e-5)
    logprobs.sum().backward()
    assert logits.grad.dtype == torch.bfloat16 and logits.grad.shape == logits.shape


def test_no_entropy_asked_none_given():
    logits = torch.randn(1, 2, 3)
    assert logprobs_and_entropy(logits, torch.zeros(1, 2, dtype=torch.long))[1] is None


def test_the_planner_counts_the_block_size_ppo_uses():
    from llmpost.memplan.estimate import LOGPROB_BLOCK_BYTES
    from llmpost.rl.logprobs import CHUNK_BYTES

    assert LOGPROB_BLOCK_BYTES == CHUNK_BYTES
