"""Pairs decided by a verifiable reward: the higher total wins, equal totals tie, and rankings follow the totals."""

from __future__ import annotations

import pytest

from llmpost.errors import DataError
from llmpost.judges.aggregate import Group, preference_rows, summarize
from llmpost.judges.by_reward import reward_pairs, reward_totals
from llmpost.judges.compare import round_robin
from llmpost.rewards.registry import CombinedReward

PROMPT = [{"role": "user", "content": "Ann has 3 pens and gets 4 more. How many pens does Ann have?"}]


def test_right_answers_win_every_pair_against_wrong_ones_and_tie_among_themselves():
    group = Group(PROMPT, ["3+4=7\n#### 7", "3+4=8\n#### 8", "So Ann has 7 pens.", "#### 1"], "7", {"answer": "7"})
    totals = reward_totals([group], CombinedReward(["exact_match"]), "test")
    assert totals == [[1.0, 0.0, 1.0, 0.0]]
    outcomes = reward_pairs(round_robin(0, group.prompt, group.responses), totals)
    kinds = {(o.i, o.j): (o.winner, o.kind) for o in outcomes}
    assert kinds[(0, 1)] == (0, "consistent") and kinds[(1, 2)] == (2, "consistent")
    assert kinds[(0, 2)] == (None, "tie") and kinds[(1, 3)] == (None, "tie")
    [row] = preference_rows([group], outcomes)[0]
    assert row["ranks"] == [0, 1, 0, 1]
    report = summarize([group], outcomes, judgments=[])
    assert report["position_consistency"] is None  # nothing was asked in two orders
    assert report["ground_truth"]["agreement"] == 1.0


def test_weighted_rewards_are_summed_before_comparing():
    group = Group(PROMPT, ["#### 7", "Ann has 7 pens.\n#### 7"], "7", {"answer": "7"})
    reward = CombinedReward(["exact_match", "length:min=10,max=100=0.5"])
    totals = reward_totals([group], reward, "test")
    assert totals[0][1] > totals[0][0]  # both right; only the second is long enough
    [outcome] = reward_pairs(round_robin(0, group.prompt, group.responses), totals)
    assert outcome.winner == 1


def test_a_group_with_all_answers_equal_writes_no_row():
    group = Group(PROMPT, ["#### 8", "#### 9"], "7", {"answer": "7"})
    outcomes = reward_pairs(round_robin(0, group.prompt, group.responses), [[0.0, 0.0]])
    assert preference_rows([group], outcomes) == [[]]


def test_a_reward_that_does_not_apply_names_the_missing_column():
    group = Group(PROMPT, ["#### 7", "#### 8"], None, {})
    with pytest.raises(DataError, match="answer"):
        reward_totals([group], CombinedReward(["exact_match"]), "my-prompts.jsonl")
