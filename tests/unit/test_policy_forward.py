"""PPO's log-probs are the model's own: response_forward matches a plain forward, family by family.

Each decoder family a user is likely to bring is built tiny and random, with its
output scaling (Gemma's soft-capping, Cohere's `logit_scale`, Granite's
`logits_scaling`) set away from 1 so a hand-rebuilt LM head would fail. Batches are
left-padded with the position ids rollouts use.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from llmpost.rl.losses import token_logprobs
from llmpost.rl.policy import response_forward
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


def reference_logprobs(model, input_ids, attention_mask, position_ids, response_ids) -> torch.Tensor:
    """log pi(response token) from the model's plain forward, all positions' logits then sliced."""
    with torch.no_grad():
        logits = model(input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    logprobs = torch.log_softmax(logits[:, -response_ids.shape[1] - 1:-1].float(), dim=-1)
    return torch.gather(logprobs, 2, response_ids.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("config_cls, model_cls, extra", [f[1:] for f in FAMILIES], ids=[f[0] for f in FAMILIES])
def test_response_logprobs_match_the_models_own_forward(config_cls, model_cls, extra):
    model = tiny_model(config_cls, model_cls, extra)
    input_ids, attention_mask, position_ids, response_ids = left_padded_batch()
    expected = reference_logprobs(model, input_ids, attention_mask, position_ids, response_ids)

    logits, hidden = response_forward(model, input_ids, attention_mask, position_ids, response_ids.shape[1])

    torch.testing.assert_close(token_logprobs(logits, response_ids), expected, atol=1e-4, rtol=1e-4)
    assert logits.shape == (2, 5, TINY["vocab_size"])
    assert hidden.shape == (2, 5, TINY["hidden_size"])
    hidden.sum().backward()  # the value head trains the trunk through `hidden`
    grad = model.get_input_embeddings().weight.grad
    assert grad is not None and grad.abs().sum() > 0


class NoLogitsToKeep(nn.Module):
    """A causal LM whose forward takes no `logits_to_keep`: response_forward must slice full logits."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def get_output_embeddings(self) -> nn.Module:
        return self.lm.get_output_embeddings()

    def forward(self, input_ids, attention_mask, position_ids, use_cache=False):
        return self.lm(input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache)


def test_a_forward_without_logits_to_keep_gets_full_logits_sliced():
    model = tiny_model("CohereConfig", "CohereForCausalLM", {"logit_scale": 4.0})
    input_ids, attention_mask, position_ids, response_ids = left_padded_batch()
    expected = reference_logprobs(model, input_ids, attention_mask, position_ids, response_ids)

    logits, hidden = response_forward(NoLogitsToKeep(model), input_ids, attention_mask, position_ids,
                                      response_ids.shape[1])

    torch.testing.assert_close(token_logprobs(logits, response_ids), expected, atol=1e-4, rtol=1e-4)
    assert hidden.shape == (2, 5, TINY["hidden_size"])
