"""Unpaired feedback: single responses marked desirable or not (thumbs up / down), for `llmpost kto`.

Every accepted row becomes TRL's conversational unpaired preference format,
`{"prompt": [msgs], "completion": [assistant msg], "label": bool}`; `label` true means
desirable. Accepted rows, tried in this order:

    prompt + completion + label    TRL's unpaired format: prompt and completion strings or
                                   message lists; label true/false or 1/0 (in a CSV cell
                                   also "true"/"false"/"1"/"0", any case)
    messages + label               a chat: its last assistant turn is the completion
    any preference row             every format `preferences.py` reads (pairs, rankings, the
                                   public datasets), split: the chosen / best-ranked
                                   response(s) desirable, every worse one undesirable

A pair gives one row of each label. A ranking of K responses without ties gives one
desirable row and K-1 undesirable ones, so ranked data leans undesirable; KTO's
`undesirable_weight` rebalances it. A preference row that compares nothing (a tie, a
public dataset's unrated row) gives no feedback, as it gives no pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from llmpost.data.formats import (
    RowProblem,
    as_messages,
    as_prompt,
    as_text,
    assistant,
    convert_rows,
    has,
    split_last_assistant,
)
from llmpost.data.preferences import PREFERENCE_HINT, holds_responses, row_ranking

FEEDBACK_HINT = (
    "accepted formats: prompt+completion+label (label true/false) "
    "| messages+label (the last assistant turn is the completion) "
    "| a preference row, its best response(s) desirable and the rest undesirable: "
    + PREFERENCE_HINT.removeprefix("accepted formats: ")
)
# A label as a CSV cell holds it (CSV scalars stay strings).
LABEL_TEXT = {"true": True, "false": False, "1": True, "0": False}


def to_feedback(rows: Iterable[dict], source: str) -> list[dict]:
    """Any accepted rows (see the module docstring) as `{"prompt", "completion", "label"}` rows, in order.

    `source` names the data in errors: a row that fits no format, or whose label is not
    true/false, is a `DataError` naming the row and the accepted formats.
    """
    per_row = convert_rows(rows, source, _detect, "feedback", FEEDBACK_HINT)
    return [feedback for converted in per_row for feedback in converted]


def _detect(row: dict) -> Callable[[dict], list[dict]] | None:
    if has(row, "prompt", "completion", "label"):
        return _from_unpaired
    if has(row, "messages", "label"):
        return _from_messages
    if holds_responses(row):
        return _from_preference
    return None


def _from_unpaired(row: dict) -> list[dict]:
    value = row["completion"]
    if isinstance(value, list):
        completion = as_messages(value, "completion")
    else:
        completion = [assistant(as_text(value, "'completion'"))]
    return [_feedback(as_prompt(row["prompt"]), completion, row["label"])]


def _from_messages(row: dict) -> list[dict]:
    prompt, completion = split_last_assistant(as_messages(row["messages"], "messages"), "messages")
    return [_feedback(prompt, completion, row["label"])]


def _from_preference(row: dict) -> list[dict]:
    ranking = row_ranking(row)
    best = min(ranking.ranks, default=0)
    if all(rank == best for rank in ranking.ranks):
        return []  # nothing was judged better or worse
    return [_feedback(ranking.prompt, [assistant(text)], rank == best)
            for text, rank in zip(ranking.responses, ranking.ranks, strict=True)]


def _feedback(prompt: list[dict], completion: list[dict], label: object) -> dict:
    return {"prompt": prompt, "completion": completion, "label": as_label(label)}


def as_label(value: object) -> bool:
    """True (desirable) or False from a bool, 1 / 0, or their text; anything else is a `RowProblem`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in LABEL_TEXT:
        return LABEL_TEXT[value.strip().lower()]
    raise RowProblem(f"'label' must be true or false (or 1 / 0), got {value!r}")
