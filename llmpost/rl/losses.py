"""PPO's losses (Schulman et al. 2017), each a token-level mean over response tokens."""

from __future__ import annotations

import torch

from llmpost.rl.masked import masked_mean


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate objective, negated to be minimised.

        ratio = pi(a|s) / pi_old(a|s)
        loss  = mean( max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)) )

    Also returns `clip_frac` (share of tokens where the clipped term was chosen) and
    `approx_kl`, the k3 estimate of KL(pi_old || pi) used for early stopping.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_frac = masked_mean((clipped > unclipped).float(), mask)
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    return loss, {"clip_frac": clip_frac, "approx_kl": approx_kl}


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip_range: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped value loss: the new value may move at most `clip_range` from the old one.

        V_clip = V_old + clip(V - V_old, -eps, eps)
        loss   = 0.5 * mean( max((V - R)^2, (V_clip - R)^2) )
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    with torch.no_grad():
        clip_frac = masked_mean((clipped_error > unclipped_error).float(), mask)
    return loss, {"value_clip_frac": clip_frac}
