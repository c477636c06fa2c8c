"""The held-out report of a reward model: accuracy, margins, reward spread and length bias."""

from __future__ import annotations

import pytest

from llmpost.data.preferences import to_pairs
from llmpost.rewards.reward_model import (
    group_by_prompt,
    pearson,
    preference_report,
    reward_input_ids,
    share_above,
)

ROWS = [
    {"prompt": "p1", "responses": ["best", "good", "bad", "worst"]},
    {"prompt": "p2", "chosen": "yes", "rejected": "no"},
]


def groups():
    return group_by_prompt(to_pairs(ROWS, "x"))


def test_accuracy_weighs_each_prompt_once():
    # p1: rewards put "bad" above "good" (1 of 6 pairs wrong); p2: wrong.
    report = preference_report(groups(), [[4.0, 1.0, 2.0, 0.0], [0.0, 1.0]])
    assert report["accuracy"] == pytest.approx((5 / 6 + 0) / 2)
    assert report["accuracy_top"] == pytest.approx((1.0 + 0) / 2)  # best beats every other in p1
    assert report["n_prompts"] == 2 and report["n_pairs"] == 7
    p1_margin = ((4 - 1) + (4 - 2) + (4 - 0) + (1 - 2) + (1 - 0) + (2 - 0)) / 6
    assert report["mean_margin"] == pytest.approx((p1_margin + (0 - 1)) / 2)


def test_reward_spread_and_samples():
    report = preference_report(groups(), [[4.0, 1.0, 2.0, 0.0], [0.0, 1.0]], keep_samples=1)
    flat = [4.0, 1.0, 2.0, 0.0, 0.0, 1.0]
    assert report["reward_mean"] == pytest.approx(sum(flat) / 6)
    assert report["reward_std"] == pytest.approx((sum((x - 4 / 3) ** 2 for x in flat) / 6) ** 0.5)
    [sample] = report["samples"]
    assert [r["text"] for r in sample["responses"]] == ["best", "good", "bad", "worst"]
    assert sample["responses"][2] == {"rank": 2, "reward": 2.0, "text": "bad"}


def test_length_bias_is_the_correlation_of_reward_with_length():
    rows = [{"prompt": "p", "responses": ["a", "bbb", "cc"]}]
    gs = group_by_prompt(to_pairs(rows, "x"))
    longer_wins = preference_report(gs, [[1.0, 3.0, 2.0]])
    assert longer_wins["length_corr"] == pytest.approx(1.0)
    assert preference_report(gs, [[3.0, 1.0, 2.0]])["length_corr"] == pytest.approx(-1.0)
    assert pearson([1.0, 1.0], [1, 2]) is None  # a constant reward has no correlation


def test_reward_input_is_the_chat_templated_conversation():
    from transformers import AutoTokenizer

    from llmpost.models.tiny import tiny_path

    tok = AutoTokenizer.from_pretrained(tiny_path())
    ids = reward_input_ids(tok, [{"role": "user", "content": "2+3?"}], "5")
    assert tok.decode(ids) == "<|user|>2+3?<|end|><|assistant|>5<|end|>"


def test_share_above_counts_every_pair_and_ties_half():
    highs, lows = [3.0, 1.0, 2.0], [0.0, 2.0]
    by_pairs = sum(1.0 if h > lo else 0.5 if h == lo else 0.0 for h in highs for lo in lows) / 6
    assert share_above(highs, lows) == pytest.approx(by_pairs) == pytest.approx(4.5 / 6)
    assert share_above([1.0], []) is None


def test_accuracy_across_prompts_sees_rewards_shifted_per_prompt():
    """Right within each prompt, yet p2's worst outscores p1's best: only the across-prompts figure shows it."""
    rows = [{"prompt": "p1", "chosen": "right", "rejected": "wrong"},
            {"prompt": "p2", "chosen": "right", "rejected": "wrong"}]
    shifted = preference_report(group_by_prompt(to_pairs(rows, "x")), [[1.0, 0.0], [11.0, 10.0]])
    assert shifted["accuracy"] == 1.0
    assert shifted["accuracy_across_prompts"] == pytest.approx(3 / 4)  # p1's right answer loses to p2's wrong one
    centred = preference_report(group_by_prompt(to_pairs(rows, "x")), [[0.5, -0.5], [0.5, -0.5]])
    assert centred["accuracy_across_prompts"] == 1.0
