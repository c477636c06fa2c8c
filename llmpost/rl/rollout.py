"""Sampling responses from the policy, kept as token tensors for the PPO update.

A rollout holds each prompt left-padded (generation continues from the right
edge) and each response right-padded after its last token. The response mask
marks the tokens the policy actually chose, up to and including the first EOS:
the prompt and the padding never enter a loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
    side, trunc = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"  # keep a long prompt's end
    try:
        batch = tokenizer(prompt_texts, return_tensors="pt", padding=True, add_special_tokens=False,
                          truncation=max_prompt_length is not None, max_length=max_prompt_length)
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = side, trunc
    device = next(lm.parameters()).device
    prompt_ids, prompt_mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    was_training = lm.training
    lm.eval()  # generation uses the KV cache; gradient checkpointing would turn it off in train mode
    try:
        out = lm.generate(
            input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True, temperature=temperature,
            top_p=top_p, top_k=0, max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
    finally:
        lm.train(was_training)
    response_ids = out[:, prompt_ids.shape[1]:]
    response_mask = response_mask_from(response_ids, tokenizer.eos_token_id)
    # Padding after EOS becomes the pad token, whatever generate wrote there.
    response_ids = torch.where(response_mask.bool(), response_ids, tokenizer.pad_token_id)
    completions = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    return Rollout(prompt_ids, prompt_mask, response_ids, response_mask, completions)
