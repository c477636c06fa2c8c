"""Reward normalisation and clipping: keep the rewards, and so the advantages, on a steady scale.

Reward-model scores have an arbitrary offset and scale that drift as the policy
improves; dividing by a running standard deviation (and optionally removing the
running mean) keeps the advantage scale, and so the effective step size, steady.
"""

from __future__ import annotations

import torch


class RunningMoments:
    """Running mean and standard deviation of every score seen (Chan et al.'s parallel update)."""

    def __init__(self):
        self.mean = 0.0
        self.var = 1.0
        self.count = 0

    def update(self, xs: torch.Tensor) -> None:
        xs = xs.double()
        n = xs.numel()
        if n == 0:
            return
        batch_mean = xs.mean().item()
        batch_var = xs.var(unbiased=False).item() if n > 1 else 0.0
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> float:
        return max(self.var, 0.0) ** 0.5


def scale_scores(scores: torch.Tensor, moments: RunningMoments | None, clip: float | None) -> torch.Tensor:
    """Scores normalised by the running moments (when given), then clipped to [-clip, clip] (when given)."""
    if moments is not None:
        scores = (scores - moments.mean) / (moments.std + 1e-8)
    if clip is not None:
        scores = scores.clamp(-clip, clip)
    return scores


def scale_step_rewards(rewards: torch.Tensor, moments: RunningMoments | None) -> torch.Tensor:
    """Rewards placed inside responses (`dense.py`), on the scale `scale_scores` puts sequence rewards on.

    The moments are those of each response's whole reward (sequence + inside), and the mean
    comes off once, with the sequence reward at the last token, so a response's rewards sum
    to its whole reward normalised. Clipping stays with the sequence reward: placed rewards
    are each a share of a bounded score.
    """
    if moments is None:
        return rewards
    return rewards / (moments.std + 1e-8)
