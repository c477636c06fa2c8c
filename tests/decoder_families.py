"""Tiny random-init models of every decoder family a user is likely to bring, and a left-padded batch.

Each family's output scaling (Gemma's soft-capping, Cohere's `logit_scale`, Granite's
`logits_scaling`) is set away from 1, so a hand-rebuilt LM head would fail. Shared by the
tests that check PPO's forward against the model's own.
"""

from __future__ import annotations

import torch
import transformers
from torch import nn

from llmpost.rl.rollout import positions_from_mask

TINY = {"vocab_size": 96, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 64,
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
MOE = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32}

# (id, config class, causal LM class, model-specific config)
FAMILIES = [
    ("llama", "LlamaConfig", "LlamaForCausalLM", {}),
    ("qwen2", "Qwen2Config", "Qwen2ForCausalLM", {}),
    ("qwen3", "Qwen3Config", "Qwen3ForCausalLM", {}),
    ("qwen3-moe", "Qwen3MoeConfig", "Qwen3MoeForCausalLM", MOE),
    ("gemma2", "Gemma2Config", "Gemma2ForCausalLM", {"final_logit_softcapping": 0.5}),
    ("gemma3", "Gemma3TextConfig", "Gemma3ForCausalLM", {"final_logit_softcapping": 0.5}),
    ("mistral", "MistralConfig", "MistralForCausalLM", {}),
    ("phi3", "Phi3Config", "Phi3ForCausalLM", {}),
    ("granite", "GraniteConfig", "GraniteForCausalLM", {"logits_scaling": 0.25}),
    ("granite-moe", "GraniteMoeConfig", "GraniteMoeForCausalLM",
     {"logits_scaling": 0.25, "num_local_experts": 4, "num_experts_per_tok": 2}),
    ("cohere", "CohereConfig", "CohereForCausalLM", {"logit_scale": 4.0}),
    ("cohere2", "Cohere2Config", "Cohere2ForCausalLM", {"logit_scale": 4.0}),
    ("olmo2", "Olmo2Config", "Olmo2ForCausalLM", {}),
    ("smollm3", "SmolLM3Config", "SmolLM3ForCausalLM", {}),
]


def tiny_model(config_cls: str, model_cls: str, extra: dict) -> nn.Module:
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**{**TINY, **extra})
    return getattr(transformers, model_cls)(config).eval()


def left_padded_batch(response_length: int = 5) -> tuple[torch.Tensor, ...]:
    """Two sequences, the first with 3 tokens of left padding; responses are the last tokens."""
    torch.manual_seed(1)
    input_ids = torch.randint(3, TINY["vocab_size"], (2, 12))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :3] = 0
    input_ids[0, :3] = TINY["pad_token_id"]
    return input_ids, attention_mask, positions_from_mask(attention_mask), input_ids[:, -response_length:]
