"""Preference data: ranked responses and the chosen/rejected pairs expanded from them.

Used by `llmpost rm` (reward model from rankings) and `llmpost dpo`. Every accepted
row becomes a `Ranking` (one prompt, K >= 2 responses, rank 0 = best, equal ranks
= tie); `rankings_to_pairs` expands rankings into TRL's conversational preference
format `{"prompt": [msgs], "chosen": [assistant msg], "rejected": [assistant msg]}`.

Accepted rows:

    prompt + chosen + rejected          strings or message lists; message lists that
                                        repeat the prompt turns have them split off
    chosen + rejected                   HH-RLHF transcripts ("\\n\\nHuman: ...
                                        \\n\\nAssistant: ..."); the shared prefix up to
                                        the last "Assistant:" is the prompt
    prompt + responses                  ordered best -> worst
    prompt + responses + ranks          lower rank = better, ties allowed
    prompt + responses + scores         higher score = better, ties allowed
    prompt|instruction + completions    UltraFeedback: each completion has `response`
                                        or `text` and `overall_score`,
                                        `fine-grained_score`, `ratings`/`rating` or
                                        `annotations` (mean of numeric ratings)

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
    "| prompt/instruction+completions (UltraFeedback)"
)
EXPANSIONS = ("all", "best_vs_rest")

# UltraFeedback keeps a completion's quality under one of these, most summary first.
ULTRAFEEDBACK_SCORE_KEYS = ("overall_score", "fine-grained_score", "ratings", "rating", "annotations")


@dataclass
class Ranking:
    """One prompt and K >= 2 responses ranked best (0) to worst; equal ranks are ties."""

    prompt: list[dict]
    responses: list[str]
    ranks: list[int]
    scores: list[float] | None = None


def to_rankings(rows: Iterable[dict], source: str) -> list[Ranking]:
    """Read any accepted preference row (pair, ranking or UltraFeedback) as a `Ranking`.

    `source` names the data in errors. A pair becomes a ranking of two.
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


def _detect(row: dict) -> Callable[[dict], Ranking] | None:
    if has(row, "completions") and (has(row, "prompt") or has(row, "instruction")):
        return _from_ultrafeedback
    if has(row, "responses"):
        return _from_responses
    if has(row, "chosen", "rejected"):
        return _from_pair
    return None


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


def _from_ultrafeedback(row: dict) -> Ranking:
    key = "prompt" if has(row, "prompt") else "instruction"
    completions = row["completions"]
    if not isinstance(completions, list):
        raise RowProblem(f"'completions' must be a list, got {kind_of(completions)}")
    responses, scores = [], []
    for i, completion in enumerate(completions, 1):
        if not isinstance(completion, dict):
            raise RowProblem(f"'completions' item {i} is {kind_of(completion)}, not an object")
        text_key = "response" if has(completion, "response") else "text"
        responses.append(as_text(completion.get(text_key), f"'completions' item {i} response (or text)"))
        scores.append(_ultrafeedback_score(completion, i))
    _check_enough(responses)
    return Ranking(as_prompt(row[key], key), responses, dense_ranks(scores, higher_is_better=True), scores)


def _ultrafeedback_score(completion: dict, i: int) -> float:
    for key in ULTRAFEEDBACK_SCORE_KEYS:
        if has(completion, key):
            found = _collect_numbers(completion[key])
            if found:
                return sum(found) / len(found)
    raise RowProblem(
        f"'completions' item {i} has no numeric score (looked for {', '.join(ULTRAFEEDBACK_SCORE_KEYS)})"
    )


def _collect_numbers(value: object) -> list[float]:
    """Every number in a rating value: 4, "4", [4, 5], {"helpfulness": {"Rating": "4"}, ...}.

    Non-numeric ratings such as "N/A" are skipped, as UltraFeedback's own scripts do.
    """
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        try:
            return [float(value)]
        except ValueError:
            return []
    if isinstance(value, dict):
        if "Rating" in value or "rating" in value:
            return _collect_numbers(value.get("Rating", value.get("rating")))
        return [n for v in value.values() for n in _collect_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _collect_numbers(v)]
    return []


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
