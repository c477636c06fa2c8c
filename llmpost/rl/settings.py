"""PPO's knobs, grouped the way the algorithm uses them: sampling, the KL penalty, the update.

Each group is a config section of `llmpost ppo` (`rollout:`, `kl:`, `ppo:`), so
`--set ppo.clip_range=0.1` reaches the algorithm directly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmpost.config.base import Strict


class RolloutSettings(Strict):
    temperature: float = Field(1.0, gt=0, description="sampling temperature; 1.0 samples the policy as it is")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling; keep 1.0 so PPO's log-probs match what was sampled")
    max_new_tokens: int = Field(32, ge=1, description="longest response; sampling also stops at EOS")


class KLSettings(Strict):
    coef: float = Field(0.05, ge=0, description="beta: KL penalty per token; higher stays nearer the reference")
    target: float | None = Field(
        None, gt=0, description="adaptive control: steer beta so the per-response KL tracks this; null = fixed beta"
    )
    horizon: int = Field(10000, ge=1, description="adaptive control: responses over which beta may change by ~20%")
    estimator: Literal["k1", "k2", "k3"] = Field(
        "k1", description="per-token KL estimate in the reward: k1 = log ratio, k2 = squared/2, k3 = never negative"
    )


class PPOSettings(Strict):
    epochs: int = Field(4, ge=1, description="optimisation passes over each rollout batch")
    mini_batch_size: int = Field(8, ge=1, description="responses per optimizer update (batch_size must be a multiple)")
    clip_range: float = Field(0.2, gt=0, description="epsilon: how far the probability ratio may move per update")
    clip_range_value: float = Field(0.2, gt=0, description="how far a value prediction may move per update")
    vf_coef: float = Field(0.1, ge=0, description="value loss weight; the critic shares the policy's trunk")
    entropy_coef: float = Field(0.0, ge=0, description="entropy bonus weight; > 0 discourages collapsing onto one answer")
    gamma: float = Field(1.0, ge=0, le=1, description="discount over response tokens (1.0: the reward is for the whole response)")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda: lower = less variance, more bias from the critic")
    whiten_advantages: bool = Field(True, description="normalise advantages to mean 0 / std 1 per rollout batch")
    # Off by default. From the quickstart's SFT and reward model, 16 rollouts x 4 epochs of 2 minibatches,
    # minibatches measured a median of 2e-4 per token at lr 3e-5 (at most 0.16) and 0.016 at lr 3e-4 (at
    # most 0.34, while the KL to the reference ran to 10). Stopping at 0.02 or 0.1 cut a third or a tenth
    # of the updates at 3e-4 but not the fall of held-out exact match. When set, 0.01-0.05 is usual
    # (Stable-Baselines3, Spinning Up).
    target_kl: float | None = Field(
        None, gt=0, description="stop this batch's epochs once a minibatch's approx-KL(old || new) per token passes "
                                "this (see approx_kl_max in metrics.jsonl); null = never"
    )
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip the gradient norm; null = no clipping")
    reward_normalize: bool = Field(False, description="divide sequence rewards by their running std after removing the running mean")
    reward_clip: float | None = Field(None, gt=0, description="clip sequence rewards (after normalising) to [-c, c]; null = no clipping")
    reuse_frozen_layers: bool = Field(
        True, description="compute the decoder layers below the lowest adapter once per step and replay them in the "
                          "reference and update passes (trunk.py); false = full forwards, same result"
    )
