"""The paired figures of `llmpost compare` (evaluation/compare.py), on answers made up to know the truth."""

from __future__ import annotations

import json
import math

import pytest

from llmpost.evaluation.compare import Answers, compare_answers, mcnemar_exact_p
from llmpost.evaluation.stats import bootstrap_interval

IDS = [f"q{i}" for i in range(100)]


def answers(ref: str, right: set[int], ids: list[str] = IDS) -> Answers:
    return Answers(ref, ref, {item: n in right for n, item in enumerate(ids)})


def test_a_model_against_itself_changes_nothing():
    same = answers("sft", set(range(0, 100, 3)))
    result = compare_answers(same, same, IDS, "builtin:arith-prompts:test")
    assert result.n == 100 and result.delta == 0 and result.delta_ci == [0, 0]
    assert result.a.exact_match == result.b.exact_match == 34 / 100
    counts = result.mcnemar
    assert (counts.right_to_wrong, counts.wrong_to_right, counts.both_right, counts.both_wrong) == (0, 0, 34, 66)
    assert counts.p_value == 1.0
    assert "no item changed" in result.verdict


def test_a_clear_gain_has_its_interval_above_zero_and_counts_the_changed_items():
    before = answers("tiny", set(range(20)))
    after = answers("sft", set(range(5, 50)))  # items 0-4 lost, 20-49 gained
    result = compare_answers(before, after, IDS, "data")
    assert result.delta == pytest.approx(0.45 - 0.20)
    assert result.delta == pytest.approx(result.b.exact_match - result.a.exact_match)
    assert (result.mcnemar.right_to_wrong, result.mcnemar.wrong_to_right) == (5, 30)
    low, high = result.delta_ci
    assert 0 < low < result.delta < high
    assert result.delta_ci == [round(v, 4) for v in bootstrap_interval(differences(before, after))]
    assert "B is better" in result.verdict
    reverse = compare_answers(after, before, IDS, "data")
    assert reverse.delta == pytest.approx(-result.delta) and "B is worse" in reverse.verdict


def differences(a: Answers, b: Answers) -> list[float]:
    return [float(b.correct[i]) - float(a.correct[i]) for i in IDS]


def test_items_pair_by_id_whatever_their_order_and_only_shared_items_count():
    a = answers("a", set(range(50)))
    shuffled = list(reversed(IDS[:80])) + ["extra1", "extra2"]
    b = Answers("b", "b", {item: True for item in shuffled})  # b holds 80 of the items, all right, and two others
    result = compare_answers(a, b, IDS, "data")
    assert result.n == 80 and result.rows == 100
    assert result.a.exact_match == 50 / 80 and result.b.exact_match == 1.0  # both on the same 80 items
    assert result.mcnemar.wrong_to_right == 30 and result.mcnemar.right_to_wrong == 0


def test_few_changed_items_are_called_a_hint_even_when_the_bootstrap_excludes_zero():
    a = answers("a", set())
    b = answers("b", {0, 1, 2, 3})  # 4 of 100 items gained, none lost
    result = compare_answers(a, b, IDS, "data")
    assert result.delta_ci[0] > 0  # the percentile bootstrap rarely draws none of the four
    assert result.mcnemar.p_value == pytest.approx(2 / 16)
    assert "a hint, not evidence" in result.verdict


@pytest.mark.parametrize(("lost", "gained"), [(0, 10), (2, 8), (5, 5), (3, 12), (0, 0)])
def test_mcnemar_exact_p_is_the_two_sided_binomial_test_on_the_changed_items(lost, gained):
    n = lost + gained
    # P(X <= k) + P(X >= n - k) for X ~ Binomial(n, 1/2), k the smaller count, capped at 1
    k = min(lost, gained)
    tails = sum(math.comb(n, j) for j in range(n + 1) if j <= k or j >= n - k) / 2**n if n else 1.0
    assert mcnemar_exact_p(lost, gained) == pytest.approx(min(1.0, tails))


def test_mcnemar_exact_p_matches_a_worked_example():
    assert mcnemar_exact_p(2, 8) == pytest.approx(0.109375)  # 2 (1 + 10 + 45) / 1024
    assert mcnemar_exact_p(8, 2) == mcnemar_exact_p(2, 8)


def test_json_shape_holds_both_sides_the_change_and_the_counts():
    result = compare_answers(answers("tiny", set()), answers("sft", set(range(40))), IDS, "builtin:x")
    record = json.loads(json.dumps(result.to_dict()))
    assert set(record) >= {"data", "rows", "n", "a", "b", "delta", "delta_ci", "mcnemar", "intervals"}
    assert set(record["a"]) == {"ref", "resolved", "exact_match", "exact_match_ci", "stored", "evaluated"}
    assert set(record["mcnemar"]) == {"right_to_wrong", "wrong_to_right", "both_right", "both_wrong", "p_value"}
    text = "\n".join(result.lines())
    assert "+0.400" in text and "right->wrong 0, wrong->right 40" in text

