"""Preference data: ranked responses and the chosen/rejected pairs expanded from them.

Used by `llmpost rm` (reward model from rankings), `llmpost dpo` and, through
`feedback.py`, `llmpost kto`. Every accepted row becomes a `Ranking` (one prompt, K
responses, rank 0 = best, equal ranks = tie); `rankings_to_pairs` expands rankings into
TRL's conversational preference format
`{"prompt": [msgs], "chosen": [assistant msg], "rejected": [assistant msg]}`.

Accepted rows, tried in this order (each told apart by keys the others lack):

    prompt|instruction + completions    UltraFeedback (openbmb): each completion has
                                        `response` (or `text`) and `overall_score`, else
                                        `fine-grained_score`, `ratings`/`rating` or
                                        `annotations` (mean of the numeric "Rating"s)
    prompt|instruction + generations    distilabel / argilla: higher rating = better; a
      + ratings                         null rating or generation was not rated
    prompt + answers                    Nectar: `prompt` an HH-style "Human: ...
                                        Assistant:" transcript, `answers` a list of
                                        {answer, model, rank}, rank 1 = best
    prompt.text (+ prompt.replies)      OpenAssistant oasst1/oasst2 trees export: the
                                        prompter message and its first level of
                                        assistant replies, by `rank` (0 = best); replies
                                        with no rank, or deleted, were not ranked and are
                                        left out; deeper turns are not read
    conversation_a + conversation_b     Chatbot Arena: winner model_a | model_b | tie |
      + winner                          tie (bothbad); the prompt is the turns before
                                        the first reply; a tie, or a battle of more than
                                        one turn (the vote judged the whole conversation,
                                        not the first replies), gives no pair
    history + human_ref_A               SHP: labels 1 = A preferred, 0 = B; score_A /
      + human_ref_B + labels            score_B are upvote counts and are not kept as
                                        scores (no scale a margin could use)
    prompt + response_0 + response_1    PKU-SafeRLHF: by helpfulness, `better_response_id`;
      + better_response_id              `safer_response_id` is not read
    question + answer_0 + answer_1      WebGPT comparisons: `question.full_text`; higher
      + score_0 + score_1               score = better, equal scores a tie; the browsing
                                        quotes are not part of the prompt
    prompt + responses                  ordered best -> worst
    prompt + responses + ranks          lower rank = better, ties allowed
    prompt + responses + scores         higher score = better, ties allowed
    prompt + chosen + rejected          strings or message lists; message lists that
                                        repeat the prompt turns have them split off
    chosen + rejected                   HH-RLHF transcripts ("\\n\\nHuman: ...
                                        \\n\\nAssistant: ..."); the shared prefix up to
                                        the last "Assistant:" is the prompt

Public datasets are read as published, so their rows that compare nothing are not
errors: where fewer than two responses are rated (an UltraFeedback row with one
completion, an oasst prompt whose replies were never ranked), the row's responses
are kept all tied and it gives no pair, like a tie. Every row still gives exactly one
`Ranking`, in order, so callers can zip rows with rankings.

Expansion and weighting. A ranking of K responses without ties gives K*(K-1)/2
ordered pairs (`expand="all"`), or K-1 pairs of the best against each worse one
(`expand="best_vs_rest"`); tied responses give no pair between them. Each pair of a
ranking gets weight 1 / (number of pairs from that ranking), so the weights of one
ranking sum to 1 and every prompt counts once in total however many responses it
has. Otherwise a prompt with 9 responses (36 pairs) would pull 36 times harder than
a plain pair row and the model would overfit it; InstructGPT kept a prompt's
K*(K-1)/2 comparisons together as one batch element for the same reason. A plain
pair row is a ranking of two, so its weight is 1. With `margin_from_scores=True`,
each pair also gets `margin` = score(chosen) - score(rejected) when the ranking has
scores, else rank(rejected) - rank(chosen).

Each pair carries `group`, the index of the ranking it came from, so a trainer can
keep a prompt's pairs together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from os.path import commonprefix
from typing import Literal

from llmpost.data.formats import (
    RowProblem,
    as_messages,
    as_prompt,
    as_text,
    assistant,
    convert_rows,
    has,
    kind_of,
    user,
)

PREFERENCE_HINT = (
    "accepted formats: prompt+chosen+rejected | chosen+rejected (HH-RLHF transcripts) "
    "| prompt+responses (best first) | prompt+responses+ranks | prompt+responses+scores "
    "| prompt/instruction+completions (UltraFeedback) | prompt/instruction+generations+ratings (distilabel) "
    "| prompt+answers (Nectar) | prompt.text+prompt.replies (OpenAssistant trees) "
    "| conversation_a+conversation_b+winner (Chatbot Arena) | history+human_ref_A+human_ref_B+labels (SHP) "
    "| prompt+response_0+response_1+better_response_id (PKU-SafeRLHF) "
    "| question+answer_0+answer_1+score_0+score_1 (WebGPT comparisons)"
)
EXPANSIONS = ("all", "best_vs_rest")

# UltraFeedback keeps a completion's quality under one of these, most summary first.
# overall_score is a critique's 1-10 grade; the rest are 1-5 aspect ratings
# (fine-grained_score is their mean), so the two scales are never mixed in one row.
ULTRAFEEDBACK_SCORE_KEYS = ("overall_score", "fine-grained_score", "ratings", "rating", "annotations")
ULTRAFEEDBACK_ASPECT_KEYS = ULTRAFEEDBACK_SCORE_KEYS[1:]

# Chatbot Arena's `winner` as the ranks of (conversation_a, conversation_b).
ARENA_RANKS = {"model_a": [0, 1], "model_b": [1, 0], "tie": [0, 0], "tie (bothbad)": [0, 0]}


@dataclass
class Ranking:
    """One prompt and K responses ranked best (0) to worst; equal ranks are ties.

    K >= 2, except for a public dataset's row that compares nothing (see the module
    docstring): all its responses, however many, share rank 0, so it gives no pair.
    """

    prompt: list[dict]
    responses: list[str]
    ranks: list[int]
    scores: list[float] | None = None


def to_rankings(rows: Iterable[dict], source: str) -> list[Ranking]:
    """Read any accepted preference row (see the module docstring) as a `Ranking`.

    One ranking per row, in order. `source` names the data in errors. A pair becomes
    a ranking of two.
    """
    return convert_rows(rows, source, _detect, "preference", PREFERENCE_HINT)


def rankings_to_pairs(
    rankings: Iterable[Ranking],
    *,
    expand: Literal["all", "best_vs_rest"] = "all",
    margin_from_scores: bool = False,
) -> list[dict]:
    """Expand rankings into weighted chosen/rejected pairs (see the module docstring)."""
    if expand not in EXPANSIONS:
        raise ValueError(f"expand must be one of {EXPANSIONS}, got {expand!r}")
    pairs = []
    for group, ranking in enumerate(rankings):
        ordered = _ordered_pairs(ranking.ranks, best_only=expand == "best_vs_rest")
        for better, worse in ordered:
            pair = {
                "prompt": ranking.prompt,
                "chosen": [assistant(ranking.responses[better])],
                "rejected": [assistant(ranking.responses[worse])],
                "group": group,
                "weight": 1.0 / len(ordered),
            }
            if margin_from_scores:
                pair["margin"] = _margin(ranking, better, worse)
            pairs.append(pair)
    return pairs


def to_pairs(
    rows: Iterable[dict],
    source: str,
    *,
    expand: Literal["all", "best_vs_rest"] = "all",
    margin_from_scores: bool = False,
) -> list[dict]:
    """Any accepted preference rows as weighted chosen/rejected pairs."""
    return rankings_to_pairs(to_rankings(rows, source), expand=expand, margin_from_scores=margin_from_scores)


# --- expansion ---------------------------------------------------------------------------


def _ordered_pairs(ranks: list[int], best_only: bool) -> list[tuple[int, int]]:
    """(better, worse) index pairs, best first; ties give none. best_only: only the top rank as better."""
    if not ranks:
        return []  # a public dataset's row with no responses at all
    order = sorted(range(len(ranks)), key=lambda i: (ranks[i], i))
    top = ranks[order[0]]
    return [
        (better, worse)
        for better in order
        if not best_only or ranks[better] == top
        for worse in order
        if ranks[worse] > ranks[better]
    ]


def _margin(ranking: Ranking, better: int, worse: int) -> float:
    if ranking.scores is not None:
        return float(ranking.scores[better] - ranking.scores[worse])
    return float(ranking.ranks[worse] - ranking.ranks[better])


def dense_ranks(values: list[float], higher_is_better: bool) -> list[int]:
    """Dense ranks with 0 = best: equal values share a rank and no rank number is skipped."""
    distinct = sorted(set(values), reverse=higher_is_better)
    position = {v: i for i, v in enumerate(distinct)}
    return [position[v] for v in values]


# --- row formats -------------------------------------------------------------------------


def holds_responses(row: dict) -> bool:
    """True when `row` is in one of the preference formats above: it carries responses to compare."""
    return _detect(row) is not None


def row_ranking(row: dict) -> Ranking:
    """One row that `holds_responses` as a `Ranking`; a malformed one raises `RowProblem` (the caller names the row)."""
    return _detect(row)(row)


def _detect(row: dict) -> Callable[[dict], Ranking] | None:
    # Public datasets first: each needs keys that no other format uses.
    if has(row, "completions") and _has_prompt(row):
        return _from_ultrafeedback
    if has(row, "generations") and "ratings" in row and _has_prompt(row):
        return _from_distilabel
    if has(row, "prompt", "answers"):
        return _from_nectar
    if isinstance(row.get("prompt"), dict) and has(row["prompt"], "text"):
        return _from_oasst_tree
    if has(row, "conversation_a", "conversation_b", "winner"):
        return _from_arena
    if has(row, "history", "human_ref_A", "human_ref_B", "labels"):
        return _from_shp
    if has(row, "prompt", "response_0", "response_1", "better_response_id"):
        return _from_pku_saferlhf
    if has(row, "question", "answer_0", "answer_1", "score_0", "score_1"):
        return _from_webgpt
    if has(row, "responses"):
        return _from_responses
    if has(row, "chosen", "rejected"):
        return _from_pair
    return None


def _has_prompt(row: dict) -> bool:
    return has(row, "prompt") or has(row, "instruction")


def _prompt_or_instruction(row: dict) -> list[dict]:
    key = "prompt" if has(row, "prompt") else "instruction"
    return as_prompt(row[key], key)


def _from_responses(row: dict) -> Ranking:
    if not has(row, "prompt"):
        raise RowProblem("a ranking needs a 'prompt' beside 'responses'")
    responses = _responses(row["responses"])
    scores = _numbers(row["scores"], "scores", len(responses)) if has(row, "scores") else None
    if has(row, "ranks"):
        ranks = dense_ranks(_numbers(row["ranks"], "ranks", len(responses)), higher_is_better=False)
    elif scores is not None:
        ranks = dense_ranks(scores, higher_is_better=True)
    else:
        ranks = list(range(len(responses)))  # listed best -> worst
    return Ranking(as_prompt(row["prompt"]), responses, ranks, scores)


# --- public datasets, as published -------------------------------------------------------


def _from_ultrafeedback(row: dict) -> Ranking:
    completions = _objects(row["completions"], "completions")
    responses = []
    for i, completion in enumerate(completions, 1):
        text_key = "response" if has(completion, "response") else "text"
        responses.append(as_text(completion.get(text_key), f"'completions' item {i} response (or text)"))
    scores = _ultrafeedback_scores(completions)
    return _ranking_of_rated(_prompt_or_instruction(row), responses, scores, higher_is_better=True)


def _ultrafeedback_scores(completions: list[dict]) -> list[float | None]:
    """One score per completion on one scale for the whole row; None where a completion has none."""
    for i, completion in enumerate(completions, 1):
        if not any(key in completion for key in ULTRAFEEDBACK_SCORE_KEYS):
            raise RowProblem(
                f"'completions' item {i} has no numeric score (looked for {', '.join(ULTRAFEEDBACK_SCORE_KEYS)})"
            )
    overall = [_mean_rating(completion.get("overall_score")) for completion in completions]
    if all(score is not None for score in overall):
        return overall
    # Scores from both scales in one row would rank completions by scale, not by quality.
    return [_aspect_score(completion) for completion in completions]


def _aspect_score(completion: dict) -> float | None:
    for key in ULTRAFEEDBACK_ASPECT_KEYS:
        score = _mean_rating(completion.get(key))
        if score is not None:
            return score
    return None


def _mean_rating(value: object) -> float | None:
    found = _collect_numbers(value)
    return sum(found) / len(found) if found else None


def _collect_numbers(value: object) -> list[float]:
    """Every number in a rating value: 4, "4", [4, 5], {"helpfulness": {"Rating": "4"}, ...}.

    Non-numeric ratings such as "N/A" are skipped, as UltraFeedback's own scripts do.
    """
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [] if math.isnan(value) else [float(value)]
    if isinstance(value, str):
        return _collect_numbers(_number_or_none(value))
    if isinstance(value, dict):
        if "Rating" in value or "rating" in value:
            return _collect_numbers(value.get("Rating", value.get("rating")))
        return [n for v in value.values() for n in _collect_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _collect_numbers(v)]
    return []


def _from_distilabel(row: dict) -> Ranking:
    generations = row["generations"]
    if not isinstance(generations, list):
        raise RowProblem(f"'generations' must be a list, got {kind_of(generations)}")
    ratings = row["ratings"]
    if ratings is None:
        ratings = [None] * len(generations)  # the judge gave this row no ratings at all
    elif not isinstance(ratings, list) or len(ratings) != len(generations):
        raise RowProblem(
            f"'ratings' must be a list of one rating per generation ({len(generations)}), "
            f"got {len(ratings) if isinstance(ratings, list) else kind_of(ratings)}"
        )
    responses, values = [], []
    for i, (generation, rating) in enumerate(zip(generations, ratings, strict=True), 1):
        if generation is None:
            continue  # a generation that failed was not rated either
        responses.append(as_text(generation, f"'generations' item {i}"))
        values.append(_optional_number(rating, f"'ratings' item {i}"))
    return _ranking_of_rated(_prompt_or_instruction(row), responses, values, higher_is_better=True)


def _from_nectar(row: dict) -> Ranking:
    prompt = row["prompt"]
    prompt = hh_messages(prompt) if isinstance(prompt, str) else as_messages(prompt, "prompt")
    responses, ranks = [], []
    for i, answer in enumerate(_objects(row["answers"], "answers"), 1):
        responses.append(as_text(answer.get("answer"), f"'answers' item {i} answer"))
        ranks.append(_optional_number(answer.get("rank"), f"'answers' item {i} rank"))
    return _ranking_of_rated(prompt, responses, ranks, higher_is_better=False)


def _from_oasst_tree(row: dict) -> Ranking:
    root = row["prompt"]
    prompt = [user(as_text(root["text"], "'prompt' text"))]
    responses, ranks = [], []
    for i, reply in enumerate(_objects(root.get("replies") or [], "prompt.replies"), 1):
        if reply.get("deleted"):
            continue  # removed by moderators: not a response to learn from
        responses.append(as_text(reply.get("text"), f"'prompt.replies' item {i} text"))
        ranks.append(_optional_number(reply.get("rank"), f"'prompt.replies' item {i} rank"))
    return _ranking_of_rated(prompt, responses, ranks, higher_is_better=False)


def _from_arena(row: dict) -> Ranking:
    winner = row["winner"]
    if not isinstance(winner, str) or winner not in ARENA_RANKS:
        raise RowProblem(f"'winner' must be one of {', '.join(ARENA_RANKS)}, got {winner!r}")
    prompt, reply_a, turns_a = _first_exchange(row["conversation_a"], "conversation_a")
    prompt_b, reply_b, turns_b = _first_exchange(row["conversation_b"], "conversation_b")
    if prompt_b != prompt:
        raise RowProblem("'conversation_a' and 'conversation_b' must open with the same prompt turns")
    # The vote is on whole conversations: after a second turn it cannot be pinned on the first replies.
    ranks = ARENA_RANKS[winner] if turns_a == turns_b == 1 else [0, 0]
    return Ranking(prompt, [reply_a, reply_b], ranks)


def _first_exchange(value: object, what: str) -> tuple[list[dict], str, int]:
    """(the turns before the first assistant reply, that reply, how many assistant replies in all)."""
    messages = as_messages(value, what)
    replies = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    if not replies or replies[0] == 0:
        raise RowProblem(f"'{what}' must open with a user turn answered by an assistant reply")
    first = replies[0]
    return messages[:first], messages[first]["content"], len(replies)


def _from_shp(row: dict) -> Ranking:
    a_preferred = _zero_or_one(row["labels"], "labels") == 1
    responses = [as_text(row["human_ref_A"], "'human_ref_A'"), as_text(row["human_ref_B"], "'human_ref_B'")]
    return Ranking([user(as_text(row["history"], "'history'"))], responses, [0, 1] if a_preferred else [1, 0])


def _from_pku_saferlhf(row: dict) -> Ranking:
    better = _zero_or_one(row["better_response_id"], "better_response_id")
    responses = [as_text(row["response_0"], "'response_0'"), as_text(row["response_1"], "'response_1'")]
    return Ranking(as_prompt(row["prompt"]), responses, [0, 1] if better == 0 else [1, 0])


def _from_webgpt(row: dict) -> Ranking:
    question = row["question"]
    text = question.get("full_text") if isinstance(question, dict) else question
    prompt = [user(as_text(text, "'question' full_text"))]
    responses = [as_text(row["answer_0"], "'answer_0'"), as_text(row["answer_1"], "'answer_1'")]
    scores = _numbers([row["score_0"], row["score_1"]], "score_0/score_1", 2)
    return Ranking(prompt, responses, dense_ranks(scores, higher_is_better=True), scores)


def _ranking_of_rated(
    prompt: list[dict], responses: list[str], values: list[float | None], *, higher_is_better: bool
) -> Ranking:
    """Rank the responses that have a value; one with None was not rated and is left out.

    With fewer than two rated there is nothing to compare: all the responses are kept,
    tied, so the row gives no pair. Values that are ratings (higher is better) are kept
    as the ranking's scores; rank numbers are not scores.
    """
    rated = [(text, value) for text, value in zip(responses, values, strict=True) if value is not None]
    if len(rated) < 2:
        return Ranking(prompt, responses, [0] * len(responses))
    texts, numbers = [text for text, _ in rated], [value for _, value in rated]
    ranks = dense_ranks(numbers, higher_is_better=higher_is_better)
    return Ranking(prompt, texts, ranks, numbers if higher_is_better else None)


# --- pairs -------------------------------------------------------------------------------


def _from_pair(row: dict) -> Ranking:
    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, str) and isinstance(rejected, str):
        if has(row, "prompt"):
            prompt, chosen_text, rejected_text = as_prompt(row["prompt"]), chosen, rejected
        else:
            prompt, chosen_text, rejected_text = split_hh_transcripts(chosen, rejected)
    elif isinstance(chosen, list) and isinstance(rejected, list):
        prompt, chosen_text, rejected_text = _split_message_pair(row)
    else:
        raise RowProblem(
            f"'chosen' and 'rejected' must both be strings or both message lists, "
            f"got {kind_of(chosen)} and {kind_of(rejected)}"
        )
    scores = None
    if has(row, "score_chosen", "score_rejected"):  # e.g. UltraFeedback-binarized
        scores = _numbers([row["score_chosen"], row["score_rejected"]], "score_chosen/score_rejected", 2)
    return Ranking(prompt, [chosen_text, rejected_text], [0, 1], scores)


def _split_message_pair(row: dict) -> tuple[list[dict], str, str]:
    """Split the turns chosen and rejected share off as the prompt; each must end in one reply."""
    chosen, rejected = as_messages(row["chosen"], "chosen"), as_messages(row["rejected"], "rejected")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    replies = []
    for name, messages in (("chosen", chosen), ("rejected", rejected)):
        rest = messages[shared:]
        if len(rest) != 1 or rest[0]["role"] != "assistant":
            raise RowProblem(
                f"after the turns shared with the other response, '{name}' must be one "
                f"assistant message, got {len(rest)} message(s)"
            )
        replies.append(rest[0]["content"])
    if has(row, "prompt"):
        prompt = as_prompt(row["prompt"])
    elif shared:
        prompt = chosen[:shared]
    else:
        raise RowProblem(
            "no prompt: add a 'prompt' column, or include the prompt turns in 'chosen' and 'rejected'"
        )
    return prompt, replies[0], replies[1]


HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")


def split_hh_transcripts(chosen: str, rejected: str) -> tuple[list[dict], str, str]:
    """Split two HH-RLHF transcripts into (prompt messages, chosen reply, rejected reply).

    The prompt is the longest shared prefix up to and including the last "Assistant:"
    in it; what follows in each transcript is that response.
    """
    cut = commonprefix([chosen, rejected]).rfind("Assistant:")
    if cut < 0:
        raise RowProblem(
            "'chosen' and 'rejected' without a 'prompt' must be HH-RLHF transcripts "
            "sharing a prefix that ends with 'Assistant:'"
        )
    cut += len("Assistant:")
    return hh_messages(chosen[:cut]), chosen[cut:].strip(), rejected[cut:].strip()


def hh_messages(transcript: str) -> list[dict]:
    """ "\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:" as chat messages (the empty last turn dropped)."""
    parts = HH_TURN.split(transcript)
    # parts = [text before the first turn, speaker, text, speaker, text, ...]
    messages = [user(parts[0].strip())] if parts[0].strip() else []
    for speaker, text in zip(parts[1::2], parts[2::2], strict=True):
        role = "user" if speaker == "Human" else "assistant"
        messages.append({"role": role, "content": text.strip()})
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    if not any(m["role"] == "user" for m in messages):
        raise RowProblem("the shared HH-RLHF prefix has no 'Human:' turn to use as the prompt")
    return messages


# --- field helpers -----------------------------------------------------------------------


def _responses(value: object) -> list[str]:
    if not isinstance(value, list):
        raise RowProblem(f"'responses' must be a list, got {kind_of(value)}")
    responses = []
    for i, item in enumerate(value, 1):
        # A response may be a bare string or an assistant message.
        text = item.get("content") if isinstance(item, dict) else item
        responses.append(as_text(text, f"'responses' item {i}"))
    _check_enough(responses)
    return responses


def _objects(value: object, what: str) -> list[dict]:
    """A list of objects (completions, answers, replies)."""
    if not isinstance(value, list):
        raise RowProblem(f"'{what}' must be a list, got {kind_of(value)}")
    for i, item in enumerate(value, 1):
        if not isinstance(item, dict):
            raise RowProblem(f"'{what}' item {i} is {kind_of(item)}, not an object")
    return value


def _optional_number(value: object, what: str) -> float | None:
    """A rating or rank; None for one that was not given (null, NaN, "N/A")."""
    if value is None or isinstance(value, str):
        return _number_or_none(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if math.isnan(value) else float(value)
    raise RowProblem(f"{what} must be a number or null, got {kind_of(value)}")


def _number_or_none(text: str | None) -> float | None:
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _zero_or_one(value: object, what: str) -> int:
    """A 0/1 label; numeric strings too, as CSV cells hold them."""
    number = None if isinstance(value, bool) else _optional_number(value, f"'{what}'")
    if number not in (0.0, 1.0):
        raise RowProblem(f"'{what}' must be 0 or 1, got {value!r}")
    return int(number)


def _check_enough(responses: list[str]) -> None:
    if len(responses) < 2:
        raise RowProblem(f"a ranking needs at least 2 responses, got {len(responses)}")


def _numbers(value: object, what: str, length: int) -> list[float]:
    """A list of `length` numbers (numeric strings accepted, as CSV cells hold them)."""
    if not isinstance(value, list):
        raise RowProblem(f"'{what}' must be a list of numbers, got {kind_of(value)}")
    if len(value) != length:
        raise RowProblem(f"'{what}' has {len(value)} values but there are {length} responses")
    numbers = []
    for v in value:
        try:
            if isinstance(v, bool):
                raise ValueError
            numbers.append(float(v))
        except (TypeError, ValueError):
            raise RowProblem(f"'{what}' must hold numbers, got {v!r}") from None
    return numbers
