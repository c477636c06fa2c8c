"""Pairwise outcomes -> preference rows, and the report on how trustworthy the judging was.

Rankings use Copeland scores: +1 for every pairwise win, -1 for every loss, 0 for
a tie of any kind; responses with equal scores share a rank. A ranking row is
`{"prompt", "responses", "ranks", "scores"}` (rank 0 = best) and a pair row is
`{"prompt", "chosen", "rejected"}`; both are what `llmpost.data.preferences`
reads, so `llmpost rm` and `llmpost dpo` take the artifact by ref. A prompt whose
responses all tie carries no preference and gives no row (it is counted).

The report: position consistency (both orders agree, over pairs where both were
parsed), tie rate, parse-failure rate, request-failure rate, and agreement with
ground truth where the data has an answer (a pair counts when exactly one of its
two responses is correct; a tie is a miss).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from llmpost.data.preferences import dense_ranks
from llmpost.evaluation.answers import is_correct
from llmpost.judges.compare import KINDS, Judgment, PairVerdict

OUTPUTS = ("rankings", "pairs")


@dataclass
class Group:
    """One prompt and its distinct responses, with the reference answer when the data has one.

    `row` is the prompt's data row (its `answer`, `tests`, ... columns), which a ranking reward reads.
    """

    prompt: list[dict]
    responses: list[str]
    answer: str | None = None
    row: dict = field(default_factory=dict)


def copeland_scores(n: int, outcomes: list[PairVerdict]) -> list[float]:
    """Wins minus losses of each of `n` responses over the outcomes of one group."""
    scores = [0.0] * n
    for o in outcomes:
        if o.winner is not None:
            loser = o.j if o.winner == o.i else o.i
            scores[o.winner] += 1
            scores[loser] -= 1
    return scores


def by_group(outcomes: list[PairVerdict]) -> dict[int, list[PairVerdict]]:
    grouped: dict[int, list[PairVerdict]] = {}
    for o in outcomes:
        grouped.setdefault(o.group, []).append(o)
    return grouped


def preference_rows(groups: list[Group], outcomes: list[PairVerdict], output: str = "rankings") -> list[list[dict]]:
    """Rows per group (so a split keeps a prompt's rows together); empty for groups with no preference."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    grouped = by_group(outcomes)
    rows: list[list[dict]] = []
    for g, group in enumerate(groups):
        decided = [o for o in grouped.get(g, []) if o.winner is not None]
        if not decided:
            rows.append([])
            continue
        extra = {"answer": group.answer} if group.answer is not None else {}
        if output == "pairs":
            rows.append([{"prompt": group.prompt, "chosen": group.responses[o.winner],
                          "rejected": group.responses[o.j if o.winner == o.i else o.i], **extra}
                         for o in decided])
        else:
            scores = copeland_scores(len(group.responses), grouped[g])
            rows.append([{"prompt": group.prompt, "responses": group.responses,
                          "ranks": dense_ranks(scores, higher_is_better=True), "scores": scores, **extra}])
    return rows


def split_groups(rows: list[list[dict]], test_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, test) rows; a prompt's rows stay on one side; the same seed gives the same split."""
    kept = [i for i, r in enumerate(rows) if r]
    random.Random(seed).shuffle(kept)
    n_test = round(len(kept) * test_fraction)
    if test_fraction > 0 and n_test == 0 and len(kept) > 1:
        n_test = 1
    test_ids = set(kept[:n_test])
    train = [row for i in sorted(set(kept) - test_ids) for row in rows[i]]
    test = [row for i in sorted(test_ids) for row in rows[i]]
    return train, test


def summarize(groups: list[Group], outcomes: list[PairVerdict], judgments: list[Judgment]) -> dict:
    """The judging report: consistency, ties, parse and request failures, agreement with ground truth."""
    kinds = Counter(o.kind for o in outcomes)
    asked = [o for o in outcomes if o.kind != "identical"]
    both_parsed = kinds["consistent"] + kinds["tie"] + kinds["inconsistent"]
    failed = sum(1 for j in judgments if j.error)
    answered = len(judgments) - failed
    unparsed = sum(1 for j in judgments if not j.error and j.verdict is None)
    ties = sum(1 for o in asked if o.winner is None)
    return {
        "pairs": len(outcomes),
        "pairs_judged": len(asked),
        "judgments": len(judgments),
        "outcomes": {k: kinds[k] for k in KINDS},
        # Asked in both orders, did the verdicts agree? Without judgments (ranked by a reward) nothing was asked.
        "position_consistency": ratio(kinds["consistent"] + kinds["tie"], both_parsed) if judgments else None,
        "tie_rate": ratio(ties, len(asked)),
        "parse_failures": unparsed,
        "parse_failure_rate": ratio(unparsed, answered),
        "request_failures": failed,
        "request_failure_rate": ratio(failed, len(judgments)),
        "first_position_rate": ratio(sum(1 for j in judgments if j.verdict == "A"),
                                     sum(1 for j in judgments if j.verdict in ("A", "B"))),
        "ground_truth": ground_truth_agreement(groups, outcomes),
    }


def ground_truth_agreement(groups: list[Group], outcomes: list[PairVerdict]) -> dict | None:
    """How often the judge picked the correct response, over pairs with exactly one correct response."""
    correct: dict[tuple[int, int], bool] = {}
    for g, group in enumerate(groups):
        if group.answer is not None:
            for r, text in enumerate(group.responses):
                correct[(g, r)] = is_correct(text, group.answer)
    if not correct:
        return None
    scored = [o for o in outcomes if (o.group, o.i) in correct and correct[(o.group, o.i)] != correct[(o.group, o.j)]]
    agree = sum(1 for o in scored if o.winner is not None and correct[(o.group, o.winner)])
    decided = sum(1 for o in scored if o.winner is not None)
    return {
        "pairs": len(scored),
        "agreement": ratio(agree, len(scored)),
        "agreement_when_decided": ratio(agree, decided),
        "responses_correct": ratio(sum(correct.values()), len(correct)),
    }


def ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None
