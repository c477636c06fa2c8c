"""Public ranking and rating datasets, read untouched in their published shape.

Each row below copies a dataset's field names and nesting from its dataset card;
the texts are made up and short.
"""

from __future__ import annotations

import json

import pytest

from llmpost.data.load import load_rows
from llmpost.data.preferences import PREFERENCE_HINT, Ranking, rankings_to_pairs, to_pairs, to_rankings
from llmpost.errors import DataError


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def triples(pairs):
    """(last prompt turn, chosen, rejected) of each pair, as a set."""
    return {(p["prompt"][-1]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs}


# --- berkeley-nest/Nectar ----------------------------------------------------------------

NECTAR = {
    "prompt": "\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?\n\nHuman: What is 2+3?\n\nAssistant:",
    "answers": [
        {"answer": "It is 6.", "model": "llama-2-7b-chat", "rank": 3.0},
        {"answer": "2+3 = 5.", "model": "gpt-4", "rank": 1.0},
        {"answer": "5", "model": "gpt-3.5-turbo", "rank": 2.0},
    ],
    "turns": 2,
    "num_responses": 3,
    "source": ["lmsys-chat-1m"],
    "good_natured": True,
}


def test_nectar_transcript_prompt_and_answers_ranked_one_best():
    [ranking] = to_rankings([NECTAR], "nectar.parquet")
    assert ranking.prompt == [user("Hi!"), assistant("Hello, how can I help?"), user("What is 2+3?")]
    assert ranking.responses == ["It is 6.", "2+3 = 5.", "5"]
    assert ranking.ranks == [2, 0, 1]
    assert triples(rankings_to_pairs([ranking])) == {
        ("What is 2+3?", "2+3 = 5.", "5"),
        ("What is 2+3?", "2+3 = 5.", "It is 6."),
        ("What is 2+3?", "5", "It is 6."),
    }


# --- OpenAssistant oasst1 / oasst2 trees export ------------------------------------------


def oasst_message(text, role, rank=None, replies=None, deleted=False):
    return {
        "message_id": f"id-{text}",
        "parent_id": None,
        "user_id": "u1",
        "created_date": "2023-02-05T14:23:03.000000+00:00",
        "text": text,
        "role": role,
        "lang": "en",
        "review_count": 3,
        "review_result": True,
        "deleted": deleted,
        "rank": rank,
        "synthetic": False,
        "model_name": None,
        "emojis": {"+1": 2},
        "labels": {"spam": {"value": 0.0, "count": 3}},
        "replies": replies or [],
    }


def oasst_tree(prompt):
    return {"message_tree_id": prompt["message_id"], "tree_state": "ready_for_export", "prompt": prompt}


def test_oasst_tree_ranks_the_first_replies_and_leaves_out_unranked_and_deleted():
    follow_up = [oasst_message("Thanks! And 3+4?", "prompter", replies=[oasst_message("7", "assistant")])]
    tree = oasst_tree(
        oasst_message(
            "What is 2+3?",
            "prompter",
            replies=[
                oasst_message("Five.", "assistant", rank=1, replies=follow_up),
                oasst_message("2+3 is 5.", "assistant", rank=0),
                oasst_message("Six.", "assistant", rank=2),
                oasst_message("Not ranked yet.", "assistant", rank=None),
                oasst_message("Spam.", "assistant", rank=3, deleted=True),
            ],
        )
    )
    [ranking] = to_rankings([tree], "oasst.trees.jsonl")
    assert ranking == Ranking([user("What is 2+3?")], ["Five.", "2+3 is 5.", "Six."], [1, 0, 2])


def test_oasst_prompt_without_two_ranked_replies_gives_no_pair():
    one_reply = oasst_tree(oasst_message("Hello?", "prompter", replies=[oasst_message("Hi.", "assistant")]))
    no_replies = oasst_tree(oasst_message("Anyone?", "prompter"))
    del no_replies["prompt"]["replies"]  # a leaf may be exported without the key
    rankings = to_rankings([one_reply, no_replies], "oasst.trees.jsonl")
    assert [(r.responses, r.ranks) for r in rankings] == [(["Hi."], [0]), ([], [])]
    assert rankings_to_pairs(rankings) == []


# --- distilabel / argilla ----------------------------------------------------------------


def test_distilabel_generations_with_ratings_higher_is_better_and_nulls_left_out():
    row = {
        "instruction": "What is 2+3?",
        "generations": ["6", "5", "five", None],
        "generation_models": ["m1", "m2", "m3", "m4"],
        "ratings": [2, 5, None, None],
        "rationales": ["wrong", "right", None, None],
        "ultrafeedback_model": "gpt-4",
    }
    [ranking] = to_rankings([row], "distilabel.jsonl")
    assert ranking == Ranking([user("What is 2+3?")], ["6", "5"], [1, 0], [2.0, 5.0])


def test_distilabel_string_ratings_and_a_row_the_judge_skipped():
    rated = {"prompt": "Q", "generations": ["a", "b", "c"], "ratings": ["3", "N/A", "4"]}
    unrated = {"prompt": "Q", "generations": ["a", "b"], "ratings": None}
    first, second = to_rankings([rated, unrated], "d.jsonl")
    assert (first.responses, first.ranks) == (["a", "c"], [1, 0])
    assert (second.responses, second.ranks) == (["a", "b"], [0, 0])
    assert triples(rankings_to_pairs([first, second])) == {("Q", "c", "a")}


# --- lmsys/chatbot_arena_conversations ---------------------------------------------------


def arena(winner, conversation_a=None, conversation_b=None):
    return {
        "question_id": "q1",
        "model_a": "vicuna-13b",
        "model_b": "koala-13b",
        "winner": winner,
        "judge": "arena_user_123",
        "conversation_a": conversation_a or [user("What is 2+3?"), assistant("5")],
        "conversation_b": conversation_b or [user("What is 2+3?"), assistant("6")],
        "turn": 1,
        "anony": True,
        "language": "English",
        "tstamp": 1682351591.1322,
        "openai_moderation": {"categories": {"hate": False}, "flagged": False},
        "toxic_chat_tag": {"roberta-large": {"flagged": False, "probability": 0.01}},
    }


def test_arena_winner_picks_the_pair_and_ties_give_none():
    rows = [arena("model_a"), arena("model_b"), arena("tie"), arena("tie (bothbad)")]
    rankings = to_rankings(rows, "arena.parquet")
    assert [r.ranks for r in rankings] == [[0, 1], [1, 0], [0, 0], [0, 0]]
    assert all(r.prompt == [user("What is 2+3?")] and r.responses == ["5", "6"] for r in rankings)
    pairs = rankings_to_pairs(rankings)
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [("5", "6"), ("6", "5")]


def test_arena_battle_of_two_turns_gives_no_pair():
    second_turn = [user("And 3+4?")]
    row = arena(
        "model_a",
        [user("What is 2+3?"), assistant("5"), *second_turn, assistant("7")],
        [user("What is 2+3?"), assistant("6"), *second_turn, assistant("8")],
    )
    [ranking] = to_rankings([row], "arena.parquet")
    assert ranking.responses == ["5", "6"] and ranking.ranks == [0, 0]


# --- stanfordnlp/SHP ---------------------------------------------------------------------


def shp(labels):
    return {
        "post_id": "himc90",
        "domain": "askscience_train",
        "upvote_ratio": 0.99,
        "history": "Why is the sky blue?",
        "c_root_id_A": "fu1dv0u",
        "c_root_id_B": "fu1cdia",
        "created_at_utc_A": 1593535113,
        "created_at_utc_B": 1593534375,
        "score_A": 30,
        "score_B": 3,
        "human_ref_A": "Rayleigh scattering.",
        "human_ref_B": "Because it reflects the sea.",
        "labels": labels,
        "seconds_difference": 738.0,
        "score_ratio": 10.0,
    }


def test_shp_label_one_prefers_a_and_zero_prefers_b():
    a_wins, b_wins = to_rankings([shp(1), shp(0)], "shp.jsonl")
    assert a_wins == Ranking(
        [user("Why is the sky blue?")], ["Rayleigh scattering.", "Because it reflects the sea."], [0, 1]
    )
    assert b_wins.ranks == [1, 0] and b_wins.scores is None  # upvotes are not a margin's scale


# --- PKU-Alignment/PKU-SafeRLHF ----------------------------------------------------------


def test_pku_saferlhf_uses_better_response_id_not_safer_response_id():
    row = {
        "prompt": "How do I pick a lock?",
        "response_0": "Here is a detailed guide ...",
        "response_1": "I can't help with that, but a locksmith can.",
        "prompt_source": "Alpaca3-70B",
        "response_0_source": "Alpaca-7B",
        "response_1_source": "Alpaca-7B",
        "is_response_0_safe": False,
        "is_response_1_safe": True,
        "response_0_harm_category": {"Violence": False},
        "response_1_harm_category": {"Violence": False},
        "response_0_severity_level": 1,
        "response_1_severity_level": 0,
        "better_response_id": 0,
        "safer_response_id": 1,
        "response_0_sha256": "ab",
        "response_1_sha256": "cd",
    }
    [pair] = to_pairs([row], "pku.jsonl")
    assert pair["prompt"] == [user("How do I pick a lock?")]
    assert pair["chosen"] == [assistant("Here is a detailed guide ...")]
    assert pair["rejected"] == [assistant("I can't help with that, but a locksmith can.")]


# --- openai/webgpt_comparisons -----------------------------------------------------------


def webgpt(score_0, score_1):
    return {
        "question": {"dataset": "eli5", "id": "q7", "full_text": "Why do cats purr?"},
        "quotes_0": {"title": ["Purring - Wikipedia"], "extract": ["Purring is a sound ..."]},
        "answer_0": "Cats purr when content [1].",
        "tokens_0": {"prompt": ["Why"], "completion": ["Cats"]},
        "score_0": score_0,
        "quotes_1": {"title": [], "extract": []},
        "answer_1": "Nobody knows.",
        "tokens_1": {"prompt": ["Why"], "completion": ["Nobody"]},
        "score_1": score_1,
    }


def test_webgpt_scores_decide_and_equal_scores_tie():
    better, tie = to_rankings([webgpt(0.5, -0.5), webgpt(0.0, 0.0)], "webgpt.jsonl")
    assert better == Ranking(
        [user("Why do cats purr?")], ["Cats purr when content [1].", "Nobody knows."], [0, 1], [0.5, -0.5]
    )
    assert tie.ranks == [0, 0]
    [pair] = rankings_to_pairs([better, tie], margin_from_scores=True)
    assert pair["margin"] == pytest.approx(1.0)


# --- openbmb/UltraFeedback ---------------------------------------------------------------


def uf_completion(response, overall_score, ratings):
    aspects = ["instruction_following", "honesty", "truthfulness", "helpfulness"]
    annotations = {aspect: {"Rating": rating, "Rationale": "..."} for aspect, rating in zip(aspects, ratings, strict=True)}
    annotations["truthfulness"].update({"Type": ["1", "2"], "Rationale For Rating": "..."})
    annotations["helpfulness"].update({"Type": ["1"], "Rationale For Rating": "..."})
    numeric = [float(r) for r in ratings if r != "N/A"]
    return {
        "annotations": annotations,
        "critique": "Good, but ...",
        "custom_system_prompt": "You are a helpful assistant.",
        "fine-grained_score": sum(numeric) / len(numeric),
        "model": "gpt-4",
        "overall_score": overall_score,
        "principle": "helpfulness",
        "response": response,
    }


def ultrafeedback(completions):
    return {
        "source": "evol_instruct",
        "instruction": "What is 2+3?",
        "models": ["gpt-4"] * len(completions),
        "completions": completions,
        "correct_answers": ["None"],
        "incorrect_answers": ["None"],
    }


def test_ultrafeedback_native_row_is_ranked_by_overall_score():
    row = ultrafeedback(
        [
            uf_completion("6", 3.0, ["2", "3", "2", "N/A"]),
            uf_completion("5", 8.5, ["5", "5", "4", "5"]),
            uf_completion("five", 7.0, ["5", "4", "5", "4"]),
        ]
    )
    [ranking] = to_rankings([row], "uf.parquet")
    assert ranking == Ranking([user("What is 2+3?")], ["6", "5", "five"], [2, 0, 1], [3.0, 8.5, 7.0])


def test_ultrafeedback_without_every_overall_score_uses_the_aspect_ratings_for_all():
    # overall_score (1-10) for two and the 1-5 mean for the third would rank by scale.
    row = ultrafeedback(
        [
            uf_completion("a", 9.0, ["2", "2", "2", "2"]),
            uf_completion("b", None, ["4", "4", "4", "4"]),
            uf_completion("c", 6.0, ["3", "N/A", "3", "3"]),
        ]
    )
    [ranking] = to_rankings([row], "uf.parquet")
    assert ranking.scores == [2.0, 4.0, 3.0]
    assert ranking.ranks == [2, 0, 1]


def test_ultrafeedback_row_with_one_completion_gives_no_pair():
    rankings = to_rankings([ultrafeedback([uf_completion("5", 8.0, ["5", "5", "5", "5"])])], "uf.parquet")
    assert rankings[0].responses == ["5"] and rankings_to_pairs(rankings) == []


# --- loading and errors ------------------------------------------------------------------


def test_native_rows_through_files_give_the_same_rankings(tmp_path):
    import datasets

    jsonl = tmp_path / "mixed.jsonl"
    rows = [NECTAR, arena("model_b"), shp(0), webgpt(1.0, -1.0)]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_rows(str(jsonl))
    assert to_rankings(loaded.rows, loaded.source) == to_rankings(rows, "rows")
    # A saved dataset (Arrow) fills nested fields missing from a row with None.
    datasets.Dataset.from_list([arena("model_a"), arena("tie")]).save_to_disk(str(tmp_path / "arena"))
    saved = load_rows(str(tmp_path / "arena"))
    assert [r.ranks for r in to_rankings(saved.rows, saved.source)] == [[0, 1], [0, 0]]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (arena("draw"), "'winner' must be one of model_a, model_b, tie, tie (bothbad), got 'draw'"),
        (arena("model_a", conversation_b=[user("Other?"), assistant("x")]), "must open with the same prompt"),
        (shp(2), "'labels' must be 0 or 1, got 2"),
        ({**NECTAR, "answers": "ranked elsewhere"}, "'answers' must be a list, got a string"),
        ({"instruction": "Q", "generations": ["a", "b"], "ratings": [1]}, "one rating per generation (2)"),
        ({**webgpt(0.5, -0.5), "score_1": "high"}, "'score_0/score_1' must hold numbers, got 'high'"),
    ],
)
def test_malformed_public_rows_name_the_row_and_the_problem(row, problem):
    with pytest.raises(DataError, match=r"^prefs\.jsonl: row 2: ") as err:
        to_rankings([shp(1), row], "prefs.jsonl")
    assert problem in err.value.message
    assert err.value.hint == PREFERENCE_HINT


def test_hint_lists_every_public_dataset():
    names = ["UltraFeedback", "distilabel", "Nectar", "OpenAssistant", "Chatbot Arena", "SHP", "PKU-SafeRLHF", "WebGPT"]
    assert [name for name in names if name not in PREFERENCE_HINT] == []


def test_judge_without_a_policy_takes_a_public_ranking_and_refuses_bare_prompts():
    """`llmpost judge` with no --policy judges the responses the data carries, in any preference format."""
    from llmpost.stages.judge import check_has_responses

    check_has_responses(NECTAR, "nectar.parquet")
    check_has_responses(webgpt(0.5, -0.5), "webgpt.jsonl")
    with pytest.raises(DataError, match="holds prompts but no responses"):
        check_has_responses({"prompt": "What is 2+2?", "answer": "4"}, "prompts.jsonl")
