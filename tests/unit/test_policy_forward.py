"""PPO's log-probs are the model's own: response_forward matches a plain forward, family by family.

Each decoder family a user is likely to bring is built tiny and random, with its
output scaling (Gemma's soft-capping, Cohere's `logit_scale`, Granite's
`logits_scaling`) set away from 1 so a hand-rebuilt LM head would fail. Batches are
left-padded with the position ids rollouts use.
"""

from __future__ import annotations

import pytest
import torch
from decoder_families import FAMILIES, TINY, left_padded_batch, tiny_model
from torch import nn

from llmpost.rl.logprobs import token_logprobs
from llmpost.rl.policy import response_forward


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

    projected = []  # the LM head's output: the response positions alone, not one more to slice off
    hook = model.get_output_embeddings().register_forward_hook(lambda _m, _a, out: projected.append(out.shape))
    logits, hidden = response_forward(model, input_ids, attention_mask, position_ids, response_ids.shape[1])
    hook.remove()

    torch.testing.assert_close(token_logprobs(logits, response_ids), expected, atol=1e-4, rtol=1e-4)
    assert projected == [(2, 5, TINY["vocab_size"])]
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
