"""Rollouts on the real tiny model: which tokens count as the response, and padding that changes nothing."""

from __future__ import annotations

import pytest
import torch

from llmpost.evaluation.rows import pad_rows
from llmpost.rl.gae import gae_advantages
from llmpost.rl.kl import kl_penalized_rewards
from llmpost.rl.rollout import (
    positions_from_mask,
    prompt_token_lists,
    response_mask_from,
    rollout_from_token_lists,
    sample_rollout,
)

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


def test_rollouts_draw_generates_samples_and_other_configs_sample_with_generate(tiny, monkeypatch):
    """Rows that leave the batch draw `generate`'s tokens while every row writes; a generation config
    they do not apply (here: words it bans) sends sampling to `generate` itself."""
    policy, _, tok = tiny
    prompts = ["<|user|>hi<|end|><|assistant|>", "<|user|>a much longer prompt here<|end|><|assistant|>",
               "<|user|>what is 3+4?<|end|><|assistant|>"]
    settings = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 5}

    def by_generate():
        ids, mask = pad_rows(prompt_token_lists(tok, prompts), tok.pad_token_id, left=True)
        torch.manual_seed(3)
        was_training = policy.training
        policy.eval()  # as sample_rollout samples
        try:
            out = policy.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, **settings,
                                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        finally:
            policy.train(was_training)
        return out[:, ids.shape[1]:]

    def by_rollout():
        torch.manual_seed(3)
        return sample_rollout(policy, tok, prompts, **settings).response_ids

    plain = by_generate()
    assert not (plain == EOS).any()  # every row writes to the end: the draws are comparable
    assert torch.equal(by_rollout(), plain)
    monkeypatch.setattr(policy.generation_config, "bad_words_ids", [[token] for token in plain[:, 0].tolist()])
    banned = by_generate()
    assert not (banned[:, 0] == plain[:, 0]).any()
    assert torch.equal(by_rollout(), banned)


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


@pytest.fixture(scope="module")
def eos_prone(tiny):
    """A copy of the tiny policy with a bias towards EOS: its responses end at all kinds of lengths."""
    import copy

    policy = copy.deepcopy(tiny[0])
    head = torch.nn.Linear(policy.lm_head.in_features, policy.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(policy.lm_head.weight)
        head.bias.zero_()
        head.bias[EOS] = 4.0
    policy.lm_head = head
    return policy


def test_rollout_from_token_lists_rebuilds_a_sampled_rollout_exactly(eos_prone, tiny):
    """vLLM hands back unpadded token lists: built from them, a rollout is the one `sample_rollout` makes."""
    tok = tiny[2]
    prompts = ["<|user|>hi<|end|><|assistant|>", "<|user|>a much longer prompt here<|end|><|assistant|>",
               "<|user|>what is 3+4?<|end|><|assistant|>", "<|user|>x<|end|><|assistant|>"]
    # The prompts as the tokenizer itself left-pads them (what `sample_rollout` built before the helper).
    side, tok.padding_side = tok.padding_side, "left"
    try:
        padded = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    finally:
        tok.padding_side = side
    prompt_ids = tok(prompts, add_special_tokens=False)["input_ids"]
    ended, cut = 0, 0
    for seed in range(5):
        torch.manual_seed(seed)
        sampled = sample_rollout(eos_prone, tok, prompts, temperature=1.0, top_p=1.0, max_new_tokens=12)
        lengths = sampled.response_lengths.tolist()
        completion_ids = [ids[:n].tolist() for ids, n in zip(sampled.response_ids, lengths, strict=True)]
        rebuilt = rollout_from_token_lists(prompt_ids, completion_ids, tok, device="cpu")

        assert torch.equal(rebuilt.prompt_ids, padded["input_ids"])
        assert torch.equal(rebuilt.prompt_mask, padded["attention_mask"])
        for name in ("input_ids", "attention_mask", "position_ids", "response_ids", "response_mask"):
            assert torch.equal(getattr(rebuilt, name), getattr(sampled, name)), name
        assert rebuilt.completions == sampled.completions
        ended += sum(ids[-1] == EOS for ids in completion_ids)
        cut += sum(ids[-1] != EOS for ids in completion_ids)
    assert ended and cut  # both kinds of response were rebuilt


def test_rollout_from_token_lists_counts_each_completion_up_to_its_first_eos(tiny):
    _, _, tok = tiny
    pad = tok.pad_token_id
    prompts = [[5, 81, 82], [5, 81], [5]]
    completions = [
        [40, 41, EOS, 42, EOS],  # EOS mid-list: what follows it is not the policy's response
        [40, 41, 42, 43, 44],  # no EOS, cut at max_new_tokens: all of it counts
        [40, 41],  # no EOS, shorter than the rest (another stop token): its padding does not count
    ]
    r = rollout_from_token_lists(prompts, completions, tok)
    assert r.prompt_ids.tolist() == [[5, 81, 82], [pad, 5, 81], [pad, pad, 5]]
    assert r.prompt_mask.tolist() == [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    assert r.response_ids.tolist() == [[40, 41, EOS, pad, pad], [40, 41, 42, 43, 44], [40, 41, pad, pad, pad]]
    assert r.response_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert r.completions == tok.batch_decode([[40, 41], [40, 41, 42, 43, 44], [40, 41]], skip_special_tokens=True)


def test_rollout_from_token_lists_when_pad_is_eos(tiny):
    """Many tokenizers pad with EOS: a completion without EOS must not gain one from its padding."""
    _, _, tok = tiny

    class PadIsEos:
        pad_token_id = eos_token_id = EOS
        batch_decode = staticmethod(tok.batch_decode)

    r = rollout_from_token_lists([[5], [5]], [[40, 41], [40, 41, 42, EOS]], PadIsEos())
    assert r.response_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_an_empty_completion_is_its_eos_and_its_reward_reaches_the_update(tiny):
    """An engine that stops at once may hand back no token: the response is then the EOS, and carries the reward."""
    _, _, tok = tiny
    pad = tok.pad_token_id
    r = rollout_from_token_lists([[5, 81], [5]], [[40, 41, EOS], []], tok)
    assert r.response_ids.tolist() == [[40, 41, EOS], [EOS, pad, pad]]
    assert r.response_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert r.completions[1] == ""  # the reward function still sees an empty answer

    mask = r.response_mask.float()
    rewards = kl_penalized_rewards(torch.tensor([0.5, -1.0]), torch.zeros(2, 3), mask, beta=0.1)
    values = torch.tensor([[0.2, 0.1, 0.3], [0.4, 0.0, 0.0]])
    advantages, returns = gae_advantages(rewards, values * mask, mask, gamma=1.0, lam=0.95)
    # A one-token episode: A = r - V(s_0) and the value target is r itself.
    assert advantages[1, 0].item() == pytest.approx(-1.0 - 0.4)
    assert returns[1, 0].item() == pytest.approx(-1.0)
