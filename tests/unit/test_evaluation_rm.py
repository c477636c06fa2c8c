"""The reward model's held-out accuracy intervals (stages/rm.py): prompts are the items resampled."""

from __future__ import annotations

import random

import pytest

from llmpost.data.preferences import to_pairs
from llmpost.evaluation.stats import bootstrap_interval
from llmpost.rewards.reward_model import group_by_prompt, preference_report
from llmpost.stages.rm import accuracy_intervals, prompt_accuracies


def ranked_groups(count: int):
    """`count` prompts, each with four responses ranked best to worst."""
    rows = [{"prompt": f"p{i}", "responses": [f"best {i}", f"good {i}", f"bad {i}", f"worst {i}"]} for i in range(count)]
    return group_by_prompt(to_pairs(rows, "x"))


def scores(groups, seed: int, skill: float) -> list[list[float]]:
    """Rewards that follow the ranking more closely as `skill` grows."""
    rng = random.Random(seed)
    return [[skill * (3 - rank) + rng.gauss(0, 1) for rank in g.ranks] for g in groups]


def test_the_mean_of_prompt_accuracies_is_the_reported_accuracy():
    groups = ranked_groups(30)
    rewards = scores(groups, seed=0, skill=0.5)
    by_prompt = prompt_accuracies(groups, rewards)
    assert len(by_prompt) == 30 and all(-1e-9 <= a <= 1 + 1e-9 for a in by_prompt)  # weights sum to 1, in floats
    assert sum(by_prompt) / 30 == pytest.approx(preference_report(groups, rewards)["accuracy"])


def test_accuracy_intervals_resample_prompts_and_pair_before_with_after():
    groups = ranked_groups(40)
    before = prompt_accuracies(groups, scores(groups, seed=1, skill=0.0))
    after = prompt_accuracies(groups, scores(groups, seed=2, skill=2.0))
    fields = accuracy_intervals(before, after)
    assert fields["accuracy_ci"] == pytest.approx(bootstrap_interval(after), abs=1e-4)
    assert fields["accuracy_before_ci"] == pytest.approx(bootstrap_interval(before), abs=1e-4)
    assert fields["accuracy_delta"] == pytest.approx(sum(after) / 40 - sum(before) / 40)
    low, high = fields["accuracy_delta_ci"]
    assert 0 < low <= fields["accuracy_delta"] <= high  # a reward model that learned the ranking: a clear gain
    assert accuracy_intervals([], []) == {}  # no held-out data, no intervals
