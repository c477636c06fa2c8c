"""Sampling responses from the policy, kept as token tensors for the PPO update.

A rollout holds each prompt left-padded (generation continues from the right
edge) and each response right-padded after its last token. The response mask
marks the tokens the policy actually chose, up to and including the first EOS:
the prompt and the padding never enter a loss. Every response holds at least one
token (an empty one is its EOS), so every response has a token to carry its reward.

`sample_rollout` samples with the model itself; `vllm_rollout.py` samples with vLLM.
Both hand unpadded token lists to `rollout_from_token_lists`, the one place that pads
and masks them.

The model samples in rows that leave the batch at their end of turn (`sampled_rows`, the
loop eval and GRPO use): `generate` runs every row until the longest answer ends, and a
PPO step's answers differ in length. A generation config that does more than temperature,
top-k, top-p and min-p (a repetition penalty, ...) samples with `generate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmpost.evaluation.generation import decode_with_generate, plain_sampling, sampled_rows
from llmpost.evaluation.rows import pad_rows


@dataclass
class Rollout:
    prompt_ids: torch.Tensor  # [B, P], left-padded
    prompt_mask: torch.Tensor  # [B, P], 1 on real prompt tokens
    response_ids: torch.Tensor  # [B, R], right-padded
    response_mask: torch.Tensor  # [B, R], 1 on generated tokens up to and including EOS
    completions: list[str]  # decoded responses, special tokens stripped

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    @property
    def position_ids(self) -> torch.Tensor:
        """Positions that skip left padding, as generation used them."""
        return positions_from_mask(self.attention_mask)

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(dim=1)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids counting only attended tokens (0 for left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_mask_from(response_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 on every token up to and including the first EOS (all of them when there is no EOS)."""
    is_eos = (response_ids == eos_token_id).long()
    eos_before = is_eos.cumsum(dim=1) - is_eos  # EOS tokens strictly before each position
    return (eos_before == 0).long()


@torch.no_grad()
def sample_rollout(lm, tokenizer, prompt_texts: list[str], *, temperature: float, top_p: float,
                   max_new_tokens: int, max_prompt_length: int | None = None) -> Rollout:
    """Sample one response per prompt (already chat-formatted text) from causal LM `lm`."""
    device = next(lm.parameters()).device
    prompt_ids = prompt_token_lists(tokenizer, prompt_texts, max_prompt_length)
    was_training = lm.training
    lm.eval()  # generation uses the KV cache; gradient checkpointing would turn it off in train mode
    try:
        config = getattr(lm, "generation_config", None)
        if plain_sampling(config):
            responses = sampled_rows(lm, prompt_ids, stop_token_ids=[tokenizer.eos_token_id],
                                     pad_token_id=tokenizer.pad_token_id, max_new_tokens=max_new_tokens,
                                     temperature=temperature, top_p=top_p, min_p=getattr(config, "min_p", None))
        else:
            new_tokens = decode_with_generate(
                lm, prompt_ids, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
            responses = until_eos(torch.tensor(new_tokens), tokenizer.eos_token_id)
    finally:
        lm.train(was_training)
    return rollout_from_token_lists(prompt_ids, responses, tokenizer, device)


def prompt_token_lists(tokenizer, prompt_texts: list[str], max_prompt_length: int | None = None) -> list[list[int]]:
    """Each chat-formatted prompt's token ids, unpadded; a prompt over `max_prompt_length` keeps its end."""
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"  # the end holds the question and the assistant header
    try:
        return tokenizer(prompt_texts, add_special_tokens=False, truncation=max_prompt_length is not None,
                         max_length=max_prompt_length)["input_ids"]
    finally:
        tokenizer.truncation_side = side


def until_eos(response_ids: torch.Tensor, eos_token_id: int) -> list[list[int]]:
    """Each generated row up to and including its first EOS (all of it when there is none)."""
    lengths = response_mask_from(response_ids, eos_token_id).sum(dim=1).tolist()
    return [row[:n].tolist() for row, n in zip(response_ids, lengths, strict=True)]


def rollout_from_token_lists(prompt_ids: list[list[int]], completion_ids: list[list[int]], tokenizer,
                             device: torch.device | str | None = None) -> Rollout:
    """The Rollout for unpadded prompt and completion token lists, whichever engine sampled them.

    Both samplers (transformers here, vLLM in `vllm_rollout.py`) end here, so PPO sees the
    same tensors from either. A completion counts up to and including its first EOS;
    anything after it, and the padding, becomes the pad token outside the response mask.
    A completion without EOS (cut at max_new_tokens) counts whole. An empty completion (an
    engine that stopped at once and dropped the stop token) becomes the EOS alone: the policy
    ended its response there, and that action is what its reward is credited to. Without a
    token the reward would have nowhere to land, and a policy could escape a bad reward by
    answering nothing.
    """
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    completion_ids = [list(ids) or [eos] for ids in completion_ids]
    prompt, prompt_mask = pad_rows(prompt_ids, pad, left=True)
    response, sampled = pad_rows(completion_ids, pad, left=False)
    # Padding is never a response token: a completion without EOS may be shorter than the others
    # (vLLM also stops at the model's other stop tokens), and where pad == eos its padding looks like an EOS.
    response_mask = response_mask_from(response, eos) * sampled
    response = torch.where(response_mask.bool(), response, pad)
    completions = tokenizer.batch_decode(response, skip_special_tokens=True)
    return Rollout(prompt.to(device), prompt_mask.to(device), response.to(device), response_mask.to(device),
                   completions)
