"""evaluation/rows.py: a shared start runs once only where padding after it changes nothing.

A sliding-window layer attends to the last N cache slots, not the last N positions: padding
between a shared start and the rest of a row would take the place of real tokens in its window.
A toy Qwen2 with a 6-token window on one of its two layers, rows sharing a 20-token start: its
greedy answers and its scores as a sequence classifier must be a plain left-padded pass's.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, DynamicCache, Qwen2Config

from llmpost.evaluation.generation import decode_with_generate, greedy_rows
from llmpost.evaluation.rows import copyable, pad_rows
from llmpost.rewards.reward_model import score_sequences

START = list(range(10, 30))  # shared by every row, longer than the window
ROWS = [START + [40 + i] * (1 + i % 3) for i in range(6)]  # rows of three lengths: padding after the start


def sliding_config(**fields) -> Qwen2Config:
    return Qwen2Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, use_sliding_window=True, sliding_window=6,
                       max_window_layers=1, pad_token_id=0, eos_token_id=1, bos_token_id=2, **fields)


def test_a_sliding_window_model_answers_as_generate_does():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(sliding_config()).eval()
    assert not copyable(DynamicCache(config=model.config))

    ours = greedy_rows(model, ROWS, eos_token_id=1, pad_token_id=0, max_new_tokens=8)
    theirs = decode_with_generate(model, ROWS, eos_token_id=1, pad_token_id=0, max_new_tokens=8, do_sample=False,
                                  temperature=1.0, top_p=1.0)
    assert ours == theirs


def test_a_sliding_window_reward_model_scores_as_a_whole_pass():
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(sliding_config(num_labels=1)).eval()
    ids, mask = pad_rows(ROWS, 0, left=False)
    with torch.no_grad():
        whole = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, 0].tolist()

    assert max(abs(a - b) for a, b in zip(score_sequences(model, ROWS), whole, strict=True)) < 1e-5
