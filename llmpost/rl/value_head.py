"""The critic: a value head on the policy's own trunk.

Why on the trunk and not on an adapter of its own: the policy forward already
computes the trunk's final hidden states, so the values come from the same pass
for one extra linear layer. A separate critic (its own adapter or model) needs a
second full forward and backward per minibatch, about doubling the update's cost
and activation memory -- the cost that puts PPO out of reach of one small GPU.
The price is that value-loss gradients also shape the shared trunk (LoRA or full
weights); `ppo.vf_coef` bounds that, and the head starts at zero so early value
errors send no gradient into the trunk.
"""

from __future__ import annotations

import torch
from torch import nn

from llmpost.rl.policy import causal_lm, response_forward


class ValueHead(nn.Module):
    """V(s) = w . h + b on the trunk's final hidden state, in float32 whatever the trunk's dtype."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.float()).squeeze(-1)


class PolicyWithValue(nn.Module):
    """The module PPO trains (and DDP wraps): the policy LM plus its value head.

    `forward` returns the response positions' logits `[B, R, V]` and values `[B, R]`.
    """

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy
        self.value_head = ValueHead(causal_lm(policy).config.get_text_config().hidden_size)
        self.value_head.to(next(policy.parameters()).device)

    def forward(self, input_ids, attention_mask, position_ids, response_length: int):
        logits, hidden = response_forward(self.policy, input_ids, attention_mask, position_ids, response_length)
        return logits, self.value_head(hidden)
