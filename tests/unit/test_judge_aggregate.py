"""Both-orders combination, Copeland rankings, the rows written and the judging report."""

from __future__ import annotations

import pytest

from llmpost.data.preferences import to_pairs, to_rankings
from llmpost.judges.aggregate import (
    Group,
    copeland_scores,
    preference_rows,
    split_groups,
    summarize,
)
from llmpost.judges.compare import Judgment, PairTask, PairVerdict, combine, round_robin

PROMPT = [{"role": "user", "content": "Ann has 3 pens and gets 4 more. How many pens does Ann have?"}]
TASK = PairTask(0, 0, 1, PROMPT, "3+4=7\n#### 7", "3+4=8\n#### 8")


def judged(first: int, second: int, verdict: str | None, error: str | None = None) -> Judgment:
    return Judgment(0, first, second, verdict, reply=verdict, error=error)


@pytest.mark.parametrize("forward, backward, winner, kind", [
    ("A", "B", 0, "consistent"),        # i shown first wins, and i shown second wins
    ("B", "A", 1, "consistent"),
    ("A", "A", None, "inconsistent"),   # always the first position: position bias
    ("B", "B", None, "inconsistent"),
    ("tie", "tie", None, "tie"),
    ("A", "tie", None, "inconsistent"),
    ("A", None, None, "unparsed"),
    (None, None, None, "unparsed"),
])
def test_both_orders_must_agree_for_a_win(forward, backward, winner, kind):
    outcome = combine(TASK, judged(0, 1, forward), judged(1, 0, backward))
    assert (outcome.winner, outcome.kind) == (winner, kind)


def test_a_failed_request_is_a_counted_tie_never_a_win():
    outcome = combine(TASK, judged(0, 1, "A"), judged(1, 0, None, error="HTTP 500 (after 4 attempts)"))
    assert (outcome.winner, outcome.kind) == (None, "failed")


def test_round_robin_covers_every_unordered_pair():
    tasks = round_robin(3, PROMPT, ["a", "b", "c", "d"])
    assert [(t.i, t.j) for t in tasks] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert {t.group for t in tasks} == {3}


def test_copeland_counts_wins_minus_losses_and_ignores_ties():
    outcomes = [PairVerdict(0, 0, 1, 0, "consistent"), PairVerdict(0, 0, 2, 0, "consistent"),
                PairVerdict(0, 1, 2, None, "inconsistent")]
    assert copeland_scores(3, outcomes) == [2.0, -1.0, -1.0]


def test_rankings_and_pairs_are_what_rm_and_dpo_read():
    groups = [Group(PROMPT, ["3+4=7\n#### 7", "3+4=8\n#### 8", "3+4=9\n#### 9"], answer="7"),
              Group(PROMPT, ["x", "y"]),
              Group(PROMPT, ["p", "q"])]
    outcomes = [PairVerdict(0, 0, 1, 0, "consistent"), PairVerdict(0, 0, 2, 0, "consistent"),
                PairVerdict(0, 1, 2, 1, "consistent"),
                PairVerdict(1, 0, 1, None, "inconsistent"),   # no preference: no row
                PairVerdict(2, 0, 1, 1, "consistent")]
    rankings = preference_rows(groups, outcomes, "rankings")
    assert rankings[1] == []
    (row,) = rankings[0]
    assert row["ranks"] == [0, 1, 2] and row["answer"] == "7"
    flat = [r for rows in rankings for r in rows]
    assert [r.ranks for r in to_rankings(flat, "judge")] == [[0, 1, 2], [1, 0]]
    assert len(to_pairs(flat, "judge")) == 3 + 1

    pairs = [r for rows in preference_rows(groups, outcomes, "pairs") for r in rows]
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {
        ("3+4=7\n#### 7", "3+4=8\n#### 8"), ("3+4=7\n#### 7", "3+4=9\n#### 9"),
        ("3+4=8\n#### 8", "3+4=9\n#### 9"), ("q", "p")}
    assert len(to_pairs(pairs, "judge")) == 4


def test_split_keeps_a_prompt_on_one_side_and_is_seeded():
    rows = [[{"g": g, "k": k} for k in range(3)] for g in range(20)] + [[]]
    train, test = split_groups(rows, 0.25, seed=1)
    assert len(test) == 5 * 3 and len(train) == 15 * 3
    assert not {r["g"] for r in train} & {r["g"] for r in test}
    assert split_groups(rows, 0.25, seed=1) == (train, test)
    assert split_groups(rows, 0.25, seed=2) != (train, test)
    assert split_groups(rows, 0.0, seed=1)[1] == []


def test_report_rates_and_ground_truth():
    right, wrong, wrong2 = "3+4=7\n#### 7", "3+4=8\n#### 8", "3+4=1\n#### 1"
    groups = [Group(PROMPT, [right, wrong, wrong2], answer="7")]
    judgments = [judged(0, 1, "A"), judged(1, 0, "B"),      # consistent: right wins
                 judged(0, 2, "A"), judged(2, 0, "A"),      # inconsistent: tie
                 judged(1, 2, None), judged(2, 1, "B")]       # one unparsable
    outcomes = [PairVerdict(0, 0, 1, 0, "consistent"), PairVerdict(0, 0, 2, None, "inconsistent"),
                PairVerdict(0, 1, 2, None, "unparsed")]
    report = summarize(groups, outcomes, judgments)
    assert report["position_consistency"] == 0.5          # 1 of the 2 pairs with both orders parsed
    assert report["tie_rate"] == round(2 / 3, 4)
    assert report["parse_failures"] == 1 and report["parse_failure_rate"] == round(1 / 6, 4)
    assert report["request_failure_rate"] == 0
    truth = report["ground_truth"]
    assert truth["pairs"] == 2                             # (right, wrong) and (right, wrong2); both-wrong has no truth
    assert truth["agreement"] == 0.5 and truth["agreement_when_decided"] == 1.0
    assert summarize([Group(PROMPT, ["a", "b"])], outcomes[:1], judgments[:2])["ground_truth"] is None
