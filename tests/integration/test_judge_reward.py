"""The `judge:` reward with the real tiny judge (local backend), as GRPO/PPO would call it."""

from __future__ import annotations

import pytest
from integration.judge_setup import JUDGE, with_tiny_judge

from llmpost.artifacts.store import Store
from llmpost.data.builtin import load_builtin
from llmpost.rewards.judge_reward import make_judge_reward


def test_group_rewards_are_win_rates_from_the_local_judge(sft_store):
    store = Store(with_tiny_judge(sft_store))
    reward = make_judge_reward(f"judge:{JUDGE}", store)
    rows = load_builtin("arith-rankings", "test")[:4]
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in rows for _ in r["responses"]]
    completions = [c for r in rows for c in r["responses"]]
    scores = reward(prompts, completions, [{"answer": r["answer"]} for r in rows for _ in r["responses"]])
    assert len(scores) == 16 and all(0.0 <= s <= 1.0 for s in scores)
    for g in range(4):  # in a round robin of 4 every pair hands out one point: win rates sum to 4/2
        assert sum(scores[4 * g:4 * g + 4]) == pytest.approx(2.0)
    assert reward.stats["pairs"] == 4 * 6 and reward.model_refs == [JUDGE]
    usage = reward.usage()
    assert usage["backend"] == f"local:{JUDGE}" and usage["requests"] + usage["cache_hits"] == 48
