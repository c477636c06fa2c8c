"""Rewards inside a response: each placed on the token where a step of the text ends.

PPO's sequence reward lands on a response's last token (`kl.py`). A process reward model
scores every step of a solution, and with its reward on the token that ends each step,
GAE credits the steps one by one (`process_rewards: dense` in `llmpost ppo`).

Whoever scores the steps reads the decoded response, perhaps with another tokenizer, so
its rewards arrive as (character offset in the decoded response, reward) pairs; here each
becomes the index of the policy's own sampled token whose text covers that character.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# (prompts, completions, rows) -> (per completion: (character offset in it, reward) pairs, {name: one value per
# completion} to log as reward/NAME), e.g. `rewards.process_reward.DenseProcessRewards.steps`
StepRewardFn = Callable[[list[list[dict]], list[str], list[dict]],
                        tuple[list[list[tuple[int, float]]], dict[str, list[float]]]]


def covering_tokens(tokenizer, token_ids: list[int], offsets: list[int]) -> list[int]:
    """For each character offset into the decoded `token_ids`, the index of the token that completes that character.

    The text is decoded as rollouts decode it (special tokens skipped), and the token is the
    first whose prefix decodes to the whole text's character at the offset. Prefixes rather
    than each token's own text: a special token decodes to nothing, and byte-level BPE may
    split one character over several tokens, a prefix ending inside it decoding to "\ufffd"
    there; the step ends only with the token that completes it. Found by bisection, a few
    decodes per offset rather than one per token. An offset past the end lands on the last token.
    """
    decoded: dict[int, str] = {}

    def prefix(n: int) -> str:
        if n not in decoded:
            decoded[n] = tokenizer.decode(token_ids[:n], skip_special_tokens=True)
        return decoded[n]

    text = prefix(len(token_ids))

    def holds(n: int, offset: int) -> bool:
        """Whether the first `n` tokens decode to the whole text's character at `offset`."""
        return offset < len(text) and prefix(n)[offset:offset + 1] == text[offset]

    indices = []
    for offset in offsets:
        low, high = 1, len(token_ids)  # the fewest tokens that hold the character at `offset`
        while low < high:
            middle = (low + high) // 2
            if holds(middle, offset):
                high = middle
            else:
                low = middle + 1
        indices.append(max(low - 1, 0))
    return indices


def placed_rewards(tokenizer, response_ids: torch.Tensor, response_mask: torch.Tensor,
                   placed: list[list[tuple[int, float]]]) -> torch.Tensor:
    """`[batch, response_length]`: each (offset, reward) of `placed` added on the response token covering it.

    Only a response's own tokens (`response_mask`) are read; a row with none gets nothing.
    Two rewards on one token add up.
    """
    rewards = torch.zeros(response_ids.shape, dtype=torch.float32, device=response_ids.device)
    lengths = response_mask.sum(dim=1).tolist()
    for row, (pairs, length) in enumerate(zip(placed, lengths, strict=True)):
        if not pairs or not length:
            continue
        ids = response_ids[row, : int(length)].tolist()
        indices = covering_tokens(tokenizer, ids, [offset for offset, _ in pairs])
        for index, (_, reward) in zip(indices, pairs, strict=True):
            rewards[row, index] += reward
    return rewards
