"""evaluation/best_of.py and the eval stage's rankers: the vote, picks and the report's arithmetic on hand-made samples."""

from __future__ import annotations

import json

import pytest

from llmpost.config.resolve import resolve
from llmpost.errors import ConfigError
from llmpost.evaluation.best_of import (
    ITEMS_FILE,
    Problem,
    best_of_fields,
    best_of_metrics,
    best_of_table,
    model_scores,
    pick,
    rank,
    vote_scores,
    write_best_of_items,
)
from llmpost.evaluation.stats import bootstrap_interval, wilson_interval
from llmpost.stages.eval import Config, parse_ranker


def vote_pick(answers: list[str | None]) -> int:
    return pick(vote_scores(answers))


def test_vote_picks_the_first_sample_of_the_most_common_answer():
    assert vote_pick(["3", "7", "7", "3", "7"]) == 1
    assert vote_pick(["5", "9", "9"]) == 1


def test_vote_ties_go_to_the_answer_seen_first():
    assert vote_pick(["4", "8", "8", "4"]) == 0
    assert vote_pick(["8", "4", "4", "8"]) == 0
    assert vote_pick([None, "2", "6"]) == 1  # one vote each: the first answer


def test_samples_without_an_answer_do_not_vote():
    """Three samples with no final answer are no majority: the one answer given wins."""
    assert vote_scores([None, None, "12", None]) == [0.0, 0.0, 1.0, 0.0]
    assert vote_pick([None, None, "12", None]) == 2


def test_answers_that_match_vote_together():
    """"12" and "12.0" are one answer, as exact match compares them."""
    assert vote_scores(["12", "7", "12.0", "7"]) == [2.0, 2.0, 2.0, 2.0]
    assert vote_pick(["7", "12", "12.0"]) == 1


def test_model_scores_keep_each_problem_its_own_samples_in_order():
    problems = [problem(0, ["a", "b"], [True, False]), problem(1, ["c", "d", "e"], [False, False, True])]
    seen = []

    def score(prompts, completions):
        seen.append(len(prompts))
        return [float(ord(c)) for c in completions]

    assert model_scores(problems, score) == [[97.0, 98.0], [99.0, 100.0, 101.0]]
    assert seen == [5]  # one batched call for every sample
    rank(problems, "rm:x", model_scores(problems, score))
    assert [p.picks["rm:x"] for p in problems] == [1, 2]


def problem(index: int, samples: list[str], correct: list[bool], greedy: bool = False) -> Problem:
    return Problem(index=index, id=f"id{index}", prompt=f"question {index}", answer="1", greedy="1" if greedy else "0",
                   greedy_correct=greedy, samples=samples, extracted=samples, correct=correct,
                   messages=[{"role": "user", "content": f"question {index}"}])


def ranked_problems() -> list[Problem]:
    """20 problems of 4 samples: a ranker `good` picks the right sample where there is one, `bad` a wrong one.

    Right samples: none in problems 0-3, one (the last) in 4-19. Greedy is right in problems 4-11.
    """
    problems = [problem(i, [f"s{k}" for k in range(4)], [False, False, False, i >= 4], greedy=4 <= i < 12)
                for i in range(20)]
    rank(problems, "good", [[float(c) for c in p.correct] for p in problems])
    rank(problems, "bad", [[float(not c) for c in p.correct] for p in problems])
    return problems


def test_report_rates_oracle_and_paired_differences():
    fields = best_of_fields(ranked_problems(), ["good", "bad"], n=4, temperature=0.7, max_new_tokens=32)
    assert fields["n_eval"] == 20 and fields["rankers"] == ["good", "bad"]
    assert fields["greedy"]["exact_match"] == 8 / 20
    assert fields["ranked"]["good"]["exact_match"] == 16 / 20
    assert fields["ranked"]["bad"]["exact_match"] == 0.0
    assert fields["oracle"]["exact_match"] == 16 / 20  # a perfect ranker reaches the oracle, no more
    assert fields["oracle"]["exact_match_ci"] == pytest.approx(wilson_interval(16, 20), abs=1e-4)
    assert fields["sampled"]["exact_match"] == 16 / 80
    diffs = {(d["ranker"], d["against"]): d for d in fields["differences"]}
    assert list(diffs) == [("good", "greedy"), ("bad", "greedy"), ("good", "bad")]  # then consecutive, in order
    assert diffs["good", "greedy"]["exact_match_delta"] == pytest.approx(8 / 20)  # ranker - greedy
    assert diffs["bad", "greedy"]["exact_match_delta"] == pytest.approx(-8 / 20)
    assert diffs["good", "bad"]["exact_match_delta"] == pytest.approx(16 / 20)  # earlier - later
    per_item = [int(i >= 4) - int(4 <= i < 12) for i in range(20)]
    assert diffs["good", "greedy"]["exact_match_delta_ci"] == pytest.approx(bootstrap_interval(per_item), abs=1e-4)
    assert best_of_metrics(fields) == {"best_of_n": 4, "best_of_good": 0.8, "best_of_bad": 0.0, "best_of_oracle": 0.8}


def test_items_file_has_a_line_per_problem_with_every_sample_score_and_pick(tmp_path):
    problems = ranked_problems()
    write_best_of_items(tmp_path, problems)
    lines = [json.loads(line) for line in (tmp_path / ITEMS_FILE).read_text().splitlines()]
    assert len(lines) == 20
    last = lines[-1]
    assert last["picks"] == {"good": 3, "bad": 0} and last["picked_correct"] == {"good": True, "bad": False}
    assert [s["scores"]["good"] for s in last["samples"]] == [0.0, 0.0, 0.0, 1.0]
    assert last["oracle"] is True and last["greedy"] == {"extracted": "0", "correct": False}
    assert "messages" not in last


def test_table_shows_every_pick_and_difference():
    from rich.console import Console

    console = Console(width=80, record=True)
    console.print(best_of_table(best_of_fields(ranked_problems(), ["good", "bad"], n=4, temperature=1.0,
                                               max_new_tokens=32)))
    text = console.export_text()
    for line in ("greedy", "good", "bad", "oracle (any of 4)", "good - greedy", "good - bad", "+0.400"):
        assert line in text


@pytest.mark.parametrize(("spec", "kind", "ref", "agg"), [
    ("vote", "vote", None, "min"),
    ("rm:my-rm@v2", "rm", "my-rm@v2", "min"),
    ("prm:prm", "prm", "prm", "min"),
    ("prm:runs/prm:agg=last", "prm", "runs/prm", "last"),
])
def test_ranker_specs(spec, kind, ref, agg):
    ranker = parse_ranker(spec)
    assert (ranker.spec, ranker.kind, ranker.ref, ranker.agg) == (spec, kind, ref, agg)


def resolve_eval(**layer) -> Config:
    return resolve(Config, [layer], source="eval config")


def test_rank_by_is_comma_separated_and_every_bad_ranker_is_named():
    assert resolve_eval(best_of=4, rank_by=["prm:p,rm:r", "vote"]).rank_by == ["prm:p", "rm:r", "vote"]
    with pytest.raises(ConfigError) as caught:
        resolve_eval(best_of=4, rank_by="votes,rm:,prm:p:agg=max,rm:r:agg=min,vote,vote")
    text = str(caught.value)
    for problem_text in ("unknown ranker 'votes' (did you mean `vote`?)", "'rm:' needs a model",
                         "agg must be one of min, prod, last, mean", "agg is for process reward models",
                         "'vote' is given twice", "Rankers: vote (the majority answer), rm:REF"):
        assert problem_text in text


def test_rankers_without_best_of_are_refused():
    assert resolve_eval().best_of is None and resolve_eval().rank_by == ["vote"]
    with pytest.raises(ConfigError, match="set best_of too"):
        resolve_eval(rank_by="rm:r")
