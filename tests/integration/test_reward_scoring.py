"""rewards/reward_model.score_sequences: a batch's shared start scored once, the scores a whole pass gives.

On SmolLM2 as a reward model (a sequence classifier with one output; pad = eos): ChatML puts the
default system prompt before every conversation, so every sequence of a batch starts alike.
"""

from __future__ import annotations

import pytest
import torch

from llmpost.data.builtin import load_builtin
from llmpost.evaluation.rows import pad_rows
from llmpost.models.load import load_model, load_tokenizer, resolve_model
from llmpost.rewards.reward_model import reward_input_ids, score_sequences


@pytest.fixture(scope="module")
def reward_model():
    src = resolve_model("smollm2")
    torch.manual_seed(0)  # the new score head
    return load_model(src, kind="seqcls"), load_tokenizer(src, False)


def whole_pass(model, sequences: list[list[int]]) -> list[float]:
    """Each sequence scored as a user would by hand: one right-padded batch, no cache."""
    ids, mask = pad_rows(sequences, model.config.pad_token_id, left=False)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, 0].tolist()


def test_a_shared_start_is_scored_once_and_the_scores_match_a_whole_pass(reward_model):
    model, tokenizer = reward_model
    rows = load_builtin("arith-sft", "test")[:4]
    sequences = [reward_input_ids(tokenizer, r["messages"][:1], r["messages"][1]["content"]) for r in rows]
    sequences.append(sequences[1])  # an equal sequence (GRPO's group may sample one answer twice)
    sequences.append(sequences[2] + [tokenizer.eos_token_id])  # ends in its pad token: scored at the token before
    passes = []  # (input_ids shape, the cache it got)

    def seen(_, args, kwargs):
        passes.append((tuple(kwargs["input_ids"].shape), kwargs.get("past_key_values")))

    hook = model.register_forward_pre_hook(seen, with_kwargs=True)
    try:
        scores = score_sequences(model, sequences, batch_size=8)
    finally:
        hook.remove()

    expected = whole_pass(model, sequences)
    assert max(abs(a - b) for a, b in zip(scores, expected, strict=True)) < 1e-4
    assert len(set(expected[:4])) == 4  # the score head tells the four apart
    assert abs(scores[5] - scores[2]) < 1e-4  # ending in the pad token: scored at the token before, as its twin
    (start_shape, _), (rest_shape, cache) = passes
    shared = start_shape[1]
    assert start_shape[0] == 1 and shared >= 20  # the system prompt, and the user turn's header, once
    assert rest_shape[0] == 5  # the equal sequence once
    assert rest_shape[1] == max(map(len, sequences)) - shared
    assert cache.get_seq_length() == shared  # the pass kept none of its own keys and values


def test_a_sequence_ending_in_its_pad_token_keeps_the_token_it_is_scored_at_its_own(reward_model):
    """Two sequences alike but for the end, one of them ending in the pad token: the shared start stops
    before the token that sequence is scored at, so the score is still the whole pass's."""
    model, tokenizer = reward_model
    row = load_builtin("arith-sft", "test")[0]["messages"]
    start = reward_input_ids(tokenizer, row[:1], row[1]["content"])
    sequences = [start + [tokenizer.eos_token_id], start + tokenizer(" and so on", add_special_tokens=False)["input_ids"]]

    expected = whole_pass(model, sequences)
    assert max(abs(a - b) for a, b in zip(score_sequences(model, sequences), expected, strict=True)) < 1e-4
