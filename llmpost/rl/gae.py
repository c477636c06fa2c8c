"""Generalised advantage estimation (Schulman et al. 2016) over response tokens.

One response is an episode: token t is the action at state "prompt + tokens
before t", `values[:, t]` is the critic's V(s_t) and `rewards[:, t]` the reward for
that action. After the last real token the episode has ended, so V = 0 there.
"""

from __future__ import annotations

import torch


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                   gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), both `[batch, response_length]` and 0 on padding.

        delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lam * A_{t+1}
        R_t     = A_t + V(s_t)          (the value target)

    Responses are right-padded: masked positions come only after the last real
    token, so zeroing their rewards and values makes the last real token terminal.
    """
    rewards, values = rewards * mask, values * mask
    length = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, advantages + values
