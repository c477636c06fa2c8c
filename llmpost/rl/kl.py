"""The KL penalty that keeps the policy near its reference, and the controllers that set its strength.

Per-token rewards follow Ziegler et al. (2019) and Stiennon et al. (2020):
every response token is charged -beta * KL(policy || reference) estimated at that
token, and the sequence's reward is added at its last token.
"""

from __future__ import annotations

import torch

ESTIMATORS = ("k1", "k2", "k3")


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from the sampled tokens' log-probs.

    With x = log pi(a) - log pi_ref(a) for a ~ pi (see http://joschu.net/blog/kl-approx.html):
    k1 = x (unbiased, can be negative), k2 = x^2 / 2 (low variance, biased),
    k3 = exp(-x) - 1 + x (unbiased and never negative).
    """
    x = logprobs - ref_logprobs
    if estimator == "k1":
        return x
    if estimator == "k2":
        return 0.5 * x**2
    if estimator == "k3":
        return torch.expm1(-x) + x
    raise ValueError(f"unknown KL estimator {estimator!r}; use one of {ESTIMATORS}")


def kl_penalized_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """`[batch, response_length]` rewards: -beta * kl at every response token, plus `scores` at the last one.

    A row without response tokens in `mask` (a response left out of the update) gets no
    reward at all: there is no action to credit it to. Rollouts never sample an empty
    response (see `rollout_from_token_lists`), so only masked-out rows end up here.
    """
    rewards = -beta * kl * mask
    lengths = mask.sum(dim=1).long()
    has_tokens = lengths > 0
    rows = torch.arange(len(scores), device=rewards.device)[has_tokens]
    rewards[rows, lengths[has_tokens] - 1] += scores[has_tokens].to(rewards.dtype)
    return rewards


class FixedKLController:
    """beta stays where it was set."""

    def __init__(self, beta: float):
        self.value = beta

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Ziegler et al. (2019), section 2.2: steer beta so the measured KL tracks `target`.

        e    = clip(KL / target - 1, -0.2, 0.2)
        beta = beta * (1 + e * n_steps / horizon)

    `n_steps` is the number of sampled responses since the last update.
    """

    def __init__(self, beta: float, target: float, horizon: int):
        self.value = beta
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def kl_controller(beta: float, target: float | None, horizon: int) -> FixedKLController | AdaptiveKLController:
    """Adaptive when a target KL is given, fixed otherwise."""
    if target is None:
        return FixedKLController(beta)
    return AdaptiveKLController(beta, target, horizon)
