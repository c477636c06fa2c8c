"""Rankings and pairs: expansion, ties, weights, and every accepted row format."""

from __future__ import annotations

import json

import pytest

from llmpost.data.load import load_rows
from llmpost.data.preferences import Ranking, rankings_to_pairs, to_pairs, to_rankings
from llmpost.errors import DataError

Q = "2+3?"
PROMPT = [{"role": "user", "content": Q}]


def triples(pairs):
    """The (prompt, chosen, rejected) texts of pairs, as a set."""
    return {
        (p["prompt"][-1]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs
    }


def test_ranking_of_four_gives_six_pairs_weighted_to_one():
    pairs = to_pairs([{"prompt": Q, "responses": ["5", "6", "7", "9"]}], "r.jsonl")
    assert len(pairs) == 6
    assert triples(pairs) == {
        (Q, a, b) for a, b in [("5", "6"), ("5", "7"), ("5", "9"), ("6", "7"), ("6", "9"), ("7", "9")]
    }
    assert sum(p["weight"] for p in pairs) == pytest.approx(1.0)
    assert {p["group"] for p in pairs} == {0}
    assert pairs[0]["prompt"] == PROMPT


def test_weights_sum_to_one_per_ranking_and_pairs_weigh_one():
    rows = [
        {"prompt": "a", "responses": ["1", "2", "3"]},
        {"prompt": "b", "chosen": "x", "rejected": "y"},
        {"prompt": "c", "responses": ["1", "2", "3", "4", "5"]},
    ]
    pairs = to_pairs(rows, "x")
    for group in range(3):
        assert sum(p["weight"] for p in pairs if p["group"] == group) == pytest.approx(1.0)
    assert [p["weight"] for p in pairs if p["group"] == 1] == [1.0]


def test_ties_give_no_pair_and_scores_become_dense_ranks():
    [ranking] = to_rankings([{"prompt": Q, "responses": ["a", "b", "c"], "scores": [3, 3, 1]}], "x")
    assert ranking.ranks == [0, 0, 1]
    assert ranking.scores == [3.0, 3.0, 1.0]
    pairs = rankings_to_pairs([ranking])
    assert triples(pairs) == {(Q, "a", "c"), (Q, "b", "c")}
    assert [p["weight"] for p in pairs] == [0.5, 0.5]


def test_scores_to_ranks_higher_is_better():
    [ranking] = to_rankings(
        [{"prompt": Q, "responses": ["a", "b", "c", "d"], "scores": [0.1, 2.5, 2.5, 9]}], "x"
    )
    assert ranking.ranks == [2, 1, 1, 0]


def test_explicit_ranks_lower_is_better_with_ties():
    [ranking] = to_rankings([{"prompt": Q, "responses": ["a", "b", "c"], "ranks": [3, 1, 1]}], "x")
    assert ranking.ranks == [1, 0, 0]
    assert triples(rankings_to_pairs([ranking])) == {(Q, "b", "a"), (Q, "c", "a")}


def test_best_vs_rest_gives_k_minus_one_pairs():
    pairs = to_pairs([{"prompt": Q, "responses": ["5", "6", "7", "9"]}], "x", expand="best_vs_rest")
    assert triples(pairs) == {(Q, "5", "6"), (Q, "5", "7"), (Q, "5", "9")}
    assert sum(p["weight"] for p in pairs) == pytest.approx(1.0)


def test_margin_from_scores_or_rank_difference():
    scored = to_pairs(
        [{"prompt": Q, "responses": ["a", "b"], "scores": [4.5, 1.0]}], "x", margin_from_scores=True
    )
    assert scored[0]["margin"] == pytest.approx(3.5)
    ranked = to_pairs([{"prompt": Q, "responses": ["a", "b", "c"]}], "x", margin_from_scores=True)
    assert sorted(p["margin"] for p in ranked) == [1.0, 1.0, 2.0]
    assert "margin" not in to_pairs([{"prompt": Q, "responses": ["a", "b"]}], "x")[0]


def test_ranked_file_equals_its_hand_expanded_pair_file(tmp_path):
    ranked = tmp_path / "ranked.jsonl"
    ranked.write_text(json.dumps({"prompt": Q, "responses": ["5", "6", "1"]}) + "\n")
    expanded = tmp_path / "pairs.jsonl"
    hand = [("5", "6"), ("5", "1"), ("6", "1")]
    expanded.write_text(
        "".join(json.dumps({"prompt": Q, "chosen": c, "rejected": r}) + "\n" for c, r in hand)
    )
    from_ranked = load_rows(str(ranked))
    from_pairs = load_rows(str(expanded))
    assert triples(to_pairs(from_ranked.rows, from_ranked.source)) == triples(
        to_pairs(from_pairs.rows, from_pairs.source)
    )


def test_pair_message_lists_with_prompt_turns_are_split():
    system = {"role": "system", "content": "Be exact."}
    row = {
        "chosen": [system, {"role": "user", "content": Q}, {"role": "assistant", "content": "5"}],
        "rejected": [system, {"role": "user", "content": Q}, {"role": "assistant", "content": "6"}],
    }
    [pair] = to_pairs([row], "x")
    assert pair["prompt"] == [system, {"role": "user", "content": Q}]
    assert pair["chosen"] == [{"role": "assistant", "content": "5"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "6"}]
    # With an explicit prompt and reply-only lists, the prompt column is used.
    reply_only = {
        "prompt": Q,
        "chosen": [{"role": "assistant", "content": "5"}],
        "rejected": [{"role": "assistant", "content": "6"}],
    }
    assert triples(to_pairs([reply_only], "x")) == {(Q, "5", "6")}


def test_hh_rlhf_transcripts_are_split_at_the_last_shared_assistant_turn():
    prefix = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: What is 2+3?\n\nAssistant:"
    row = {"chosen": prefix + " It is 5.", "rejected": prefix + " It is 6, I think."}
    [pair] = to_pairs([row], "hh.jsonl")
    assert pair["prompt"] == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "What is 2+3?"},
    ]
    assert pair["chosen"] == [{"role": "assistant", "content": "It is 5."}]
    assert pair["rejected"] == [{"role": "assistant", "content": "It is 6, I think."}]


def test_hh_rlhf_without_assistant_marker_is_an_error():
    with pytest.raises(DataError, match="hh.jsonl: row 1: .*HH-RLHF"):
        to_pairs([{"chosen": "good", "rejected": "bad"}], "hh.jsonl")


def test_ultrafeedback_completions():
    row = {
        "instruction": Q,
        "completions": [
            {"response": "6", "overall_score": 3.0},
            {"response": "5", "overall_score": 9.0},
            {"response": "7", "overall_score": 3.0},
        ],
    }
    [ranking] = to_rankings([row], "uf")
    assert ranking == Ranking(PROMPT, ["6", "5", "7"], [1, 0, 1], [3.0, 9.0, 3.0])
    assert triples(rankings_to_pairs([ranking])) == {(Q, "5", "6"), (Q, "5", "7")}


def test_ultrafeedback_score_fallbacks():
    completions = [
        {"text": "a", "fine-grained_score": 4.25},
        {"text": "b", "ratings": [2, "3", "N/A"]},
        {"text": "c", "annotations": {"helpfulness": {"Rating": "1"}, "honesty": {"Rating": "2"}}},
    ]
    [ranking] = to_rankings([{"prompt": Q, "completions": completions}], "uf")
    assert ranking.scores == [4.25, 2.5, 1.5]
    assert ranking.ranks == [0, 1, 2]


def test_pair_scores_are_kept_for_margins():
    row = {"prompt": Q, "chosen": "5", "rejected": "6", "score_chosen": 8, "score_rejected": 2}
    [pair] = to_pairs([row], "x", margin_from_scores=True)
    assert pair["margin"] == 6.0 and pair["weight"] == 1.0


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"prompt": Q, "responses": ["only"]}, "at least 2 responses, got 1"),
        (
            {"prompt": Q, "responses": ["a", "b"], "ranks": [0, 1, 2]},
            "'ranks' has 3 values but there are 2 responses",
        ),
        ({"prompt": Q, "responses": ["a", "b"], "scores": ["high", "low"]}, "'scores' must hold numbers"),
        ({"responses": ["a", "b"]}, "needs a 'prompt'"),
        ({"prompt": Q, "chosen": "a", "rejected": ["b"]}, "both be strings or both message lists"),
        (
            {"prompt": Q, "completions": [{"response": "a"}, {"response": "b", "overall_score": 1}]},
            "no numeric score",
        ),
    ],
)
def test_bad_rankings_name_the_row(row, problem):
    with pytest.raises(DataError, match=r"^prefs\.jsonl: row 2: ") as err:
        to_rankings([{"prompt": Q, "chosen": "a", "rejected": "b"}, row], "prefs.jsonl")
    assert problem in err.value.message
    assert "prompt+chosen+rejected" in err.value.hint


def test_unknown_role_in_a_pair_names_row_and_role():
    row = {
        "chosen": [{"role": "user", "content": Q}, {"role": "assistant", "content": "5"}],
        "rejected": [{"role": "human", "content": Q}, {"role": "assistant", "content": "6"}],
    }
    with pytest.raises(DataError) as err:
        to_pairs([row], "prefs.jsonl")
    assert err.value.message == (
        "prefs.jsonl: row 1: 'rejected' message 1 has role 'human'; accepted roles: system, user, assistant"
    )


def test_unknown_preference_row_lists_columns_and_formats():
    with pytest.raises(DataError) as err:
        to_pairs([{"prompt": Q, "completion": "5"}], "sft.jsonl")
    assert (
        err.value.message == "sft.jsonl: row 1 fits no preference format (columns found: prompt, completion)"
    )
    assert "UltraFeedback" in err.value.hint


def test_unknown_expand_is_rejected():
    with pytest.raises(ValueError, match="expand"):
        rankings_to_pairs([], expand="pairs")


def test_builtin_rankings_and_pairs_convert():
    ranked = load_rows("builtin:arith-rankings:test")
    pairs = load_rows("builtin:arith-pairs:test")
    assert len(to_pairs(ranked.rows, ranked.source)) > len(ranked.rows)
    assert len(to_pairs(pairs.rows, pairs.source)) == len(pairs.rows)
