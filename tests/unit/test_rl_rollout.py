"""Rollouts on the real tiny model: which tokens count as the response, and padding that changes nothing."""

from __future__ import annotations

import pytest
import torch

from llmpost.rl.rollout import positions_from_mask, response_mask_from, sample_rollout

EOS = 2


def test_response_mask_keeps_tokens_up_to_and_including_the_first_eos():
    ids = torch.tensor([[5, 6, EOS, 0, 0], [5, EOS, 7, EOS, 0], [5, 6, 7, 8, 9]])
    assert response_mask_from(ids, EOS).tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]


def test_positions_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert positions_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


@pytest.fixture(scope="module")
def tiny():
    from llmpost.models.load import load_tokenizer, resolve_model
    from llmpost.rl.policy import load_policy

    torch.manual_seed(0)
    src = resolve_model("tiny")
    policy, reference = load_policy(src, qlora=False, lora=None)
    return policy, reference, load_tokenizer(src)


def test_sampled_rollout_is_left_padded_prompt_then_masked_response(tiny):
    policy, _, tok = tiny
    prompts = ["<|user|>hi<|end|><|assistant|>", "<|user|>a much longer prompt here<|end|><|assistant|>"]
    torch.manual_seed(1)
    r = sample_rollout(policy, tok, prompts, temperature=1.0, top_p=1.0, max_new_tokens=12)
    assert r.prompt_mask[0, 0] == 0 and r.prompt_mask[:, -1].all()  # the short prompt is padded on the left
    assert r.response_ids.shape == r.response_mask.shape and r.response_ids.shape[1] <= 12
    for ids, mask in zip(r.response_ids, r.response_mask, strict=True):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()  # contiguous from the first response token
        assert EOS not in ids[: n - 1].tolist()  # nothing after an EOS counts
        assert (ids[n:] == tok.pad_token_id).all()
    assert len(r.completions) == 2 and all(isinstance(c, str) for c in r.completions)


def test_logprobs_do_not_depend_on_padding_or_batch_neighbours(tiny):
    """The masking of prompt padding and response padding, checked on the real model."""
    from llmpost.rl.policy import sequence_logprobs

    policy, _, tok = tiny
    prompts = ["<|user|>hi<|end|><|assistant|>", "<|user|>a much longer prompt here, really<|end|><|assistant|>"]
    torch.manual_seed(2)
    both = sample_rollout(policy, tok, prompts, temperature=1.0, top_p=1.0, max_new_tokens=10)
    alone = sample_rollout(policy, tok, prompts[:1], temperature=1.0, top_p=1.0, max_new_tokens=10)
    # Put the batched rollout's first response in place of the lone one, then compare log-probs.
    n = int(both.response_mask[0].sum())
    alone.response_ids = both.response_ids[:1, :n]
    alone.response_mask = both.response_mask[:1, :n]

    def logprobs(r):
        batch = {"input_ids": r.input_ids, "attention_mask": r.attention_mask, "position_ids": r.position_ids,
                 "response_ids": r.response_ids}
        with torch.no_grad():
            return sequence_logprobs(policy, batch, temperature=1.0)

    assert torch.allclose(logprobs(both)[0, :n], logprobs(alone)[0], atol=1e-4)
