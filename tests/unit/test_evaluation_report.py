"""evaluation/report.py: eval.json's held-out figures and eval_items.jsonl, from known items."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from llmpost.evaluation.heldout import Evaluation, Item
from llmpost.evaluation.report import ITEMS_FILE, eval_fields, headline, learned_reward_check, write_items
from llmpost.evaluation.stats import bootstrap_interval, wilson_interval


def item(index: int, correct: bool | None, rm: float | None = None) -> Item:
    rewards = {} if rm is None else {"rm:judge-rm": rm, "format": 1.0}
    return Item(index=index, id=f"id{index}", prompt=f"question {index}", output="#### 1", extracted="1",
                answer=None if correct is None else "1", correct=correct,
                reward=None if rm is None else rm + 0.1, rewards=rewards)


def evaluation(correct: list[bool | None], rm: list[float] | None = None) -> Evaluation:
    return Evaluation([item(i, c, None if rm is None else rm[i]) for i, c in enumerate(correct)])


# 40 items: 10 right both times, 9 gained, 3 lost, 18 wrong both times.
BEFORE = [True] * 10 + [False] * 9 + [True] * 3 + [False] * 18
AFTER = [True] * 10 + [True] * 9 + [False] * 3 + [False] * 18


def test_rates_have_wilson_intervals_and_the_change_a_paired_interval():
    fields = eval_fields(evaluation(BEFORE), evaluation(AFTER))
    assert fields["exact_match_before"] == 13 / 40 and fields["exact_match"] == 19 / 40
    assert fields["exact_match_ci"] == pytest.approx(wilson_interval(19, 40), abs=1e-4)
    assert fields["exact_match_before_ci"] == pytest.approx(wilson_interval(13, 40), abs=1e-4)
    assert fields["exact_match_delta"] == pytest.approx(6 / 40)
    differences = [int(a) - int(b) for a, b in zip(AFTER, BEFORE, strict=True)]
    assert fields["exact_match_delta_ci"] == pytest.approx(bootstrap_interval(differences), abs=1e-4)
    low, high = fields["exact_match_delta_ci"]
    assert low < 6 / 40 < high
    assert fields["n_eval"] == 40 and fields["items"] == ITEMS_FILE
    assert "reward" not in fields and "learned_reward" not in fields  # no reward, nothing about one


def test_items_are_paired_by_index_not_by_position():
    after = evaluation(AFTER)
    shuffled = Evaluation(random.Random(1).sample(after.items, len(after.items)))
    assert eval_fields(evaluation(BEFORE), shuffled)["exact_match_delta_ci"] == \
        eval_fields(evaluation(BEFORE), after)["exact_match_delta_ci"]


def test_the_paired_interval_is_narrower_than_the_rates_separate_ones():
    """Most items agree before and after: pairing removes their noise from the comparison."""
    fields = eval_fields(evaluation(BEFORE), evaluation(AFTER))
    low, high = fields["exact_match_delta_ci"]
    separate = (fields["exact_match_ci"][1] - fields["exact_match_ci"][0]
                + fields["exact_match_before_ci"][1] - fields["exact_match_before_ci"][0])
    assert high - low < separate


def test_items_without_a_reference_count_in_no_rate():
    fields = eval_fields(evaluation([True, None, False]), evaluation([True, None, True]))
    assert fields["exact_match"] == 1.0 and fields["exact_match_before"] == 0.5
    assert fields["exact_match_delta"] == 0.5 and fields["n_eval"] == 3


def test_one_model_reports_no_before_and_no_change():
    fields = eval_fields(None, evaluation(AFTER), samples=2)
    assert fields["exact_match"] == 19 / 40
    assert not [k for k in fields if "before" in k or "delta" in k]
    assert [s["prompt"] for s in fields["samples"]] == ["question 0", "question 1"]


def test_headline_holds_the_summary_that_exists():
    metrics = headline(eval_fields(evaluation(BEFORE), evaluation(AFTER)))
    assert list(metrics) == ["exact_match_before", "exact_match", "exact_match_ci", "exact_match_delta",
                             "exact_match_delta_ci"]
    assert headline(eval_fields(None, evaluation(AFTER))).keys() == {"exact_match", "exact_match_ci"}


def test_a_reward_gets_its_means_and_paired_change():
    before = evaluation([True, False, False, True], rm=[0.5, 0.1, 0.2, 0.6])
    after = evaluation([True, True, False, False], rm=[0.7, 0.3, 0.2, 0.9])
    fields = eval_fields(before, after)
    assert fields["reward_before"] == pytest.approx(0.45) and fields["reward"] == pytest.approx(0.625)
    assert fields["reward_delta"] == pytest.approx(0.175)
    assert fields["rewards_after"] == {"rm:judge-rm": pytest.approx(0.525), "format": 1.0}
    assert fields["learned_reward"]["rewards"] == ["rm:judge-rm"]  # only the learned one: format is a rule


def test_learned_reward_check_counts_reward_up_while_correctness_fell():
    before = evaluation([True, True, True, False, False, True], rm=[0.9, 0.8, 0.7, 0.1, 0.2, 0.6])
    after = evaluation([True, False, False, True, False, True], rm=[0.9, 0.95, 0.5, 0.6, 0.3, 0.6])
    check = learned_reward_check(before, after, ["rm:judge-rm"])
    # item 1: right -> wrong while its score rose; item 2: right -> wrong, score fell
    assert check["became_wrong"] == 2 and check["reward_up_correct_down"] == 1
    assert check["reward_up_correct_down_share"] == pytest.approx(1 / 6) and check["n"] == 6
    after_scores, after_correct = [0.9, 0.95, 0.5, 0.6, 0.3, 0.6], [1, 0, 0, 1, 0, 1]
    assert check["correlation"] == pytest.approx(statistics.correlation(after_scores, after_correct), abs=1e-4)
    assert check["correlation_before"] == pytest.approx(
        statistics.correlation([0.9, 0.8, 0.7, 0.1, 0.2, 0.6], [1, 1, 1, 0, 0, 1]), abs=1e-4)


def test_items_file_holds_both_phases_of_every_item(tmp_path):
    before, after = evaluation(BEFORE[:4], rm=[0.1, 0.2, 0.3, 0.4]), evaluation(AFTER[:4], rm=[0.5, 0.6, 0.7, 0.8])
    write_items(tmp_path, before, after)
    rows = [json.loads(line) for line in (tmp_path / ITEMS_FILE).read_text().splitlines()]
    assert [(r["phase"], r["index"]) for r in rows] == [("before", i) for i in range(4)] + [("after", i) for i in range(4)]
    assert {"id", "prompt", "output", "extracted", "answer", "correct", "reward", "rewards"} <= rows[0].keys()
    assert [r["correct"] for r in rows[4:]] == AFTER[:4] and rows[5]["rewards"]["rm:judge-rm"] == 0.6


def test_nothing_evaluated_writes_no_items_file(tmp_path):
    write_items(tmp_path, None, None)
    assert not (tmp_path / ITEMS_FILE).exists()
    assert eval_fields(None, None)["exact_match"] is None
