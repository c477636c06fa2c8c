"""Unpaired feedback for KTO: every accepted shape, the errors, and the built-in split."""

from __future__ import annotations

import pytest

from llmpost.data.builtin import load_builtin
from llmpost.data.feedback import to_feedback
from llmpost.data.load import load_rows
from llmpost.errors import DataError
from llmpost.evaluation.answers import is_correct

Q = "2+3?"
PROMPT = [{"role": "user", "content": Q}]


def reply(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_unpaired_rows_take_strings_or_message_lists():
    rows = [
        {"prompt": Q, "completion": "5", "label": True},
        {"prompt": PROMPT, "completion": reply("6"), "label": False},
    ]
    assert to_feedback(rows, "f.jsonl") == [
        {"prompt": PROMPT, "completion": reply("5"), "label": True},
        {"prompt": PROMPT, "completion": reply("6"), "label": False},
    ]


def test_a_labelled_chat_answers_with_its_last_assistant_turn():
    system = {"role": "system", "content": "Be brief."}
    row = {"messages": [system, *PROMPT, *reply("5")], "label": 1}
    assert to_feedback([row], "f.jsonl") == [{"prompt": [system, *PROMPT], "completion": reply("5"), "label": True}]


def test_a_pair_gives_one_desirable_and_one_undesirable_row():
    pairs = [
        {"prompt": Q, "chosen": "5", "rejected": "6"},
        {"chosen": [*PROMPT, *reply("5")], "rejected": [*PROMPT, *reply("7")]},  # prompt turns inside the pair
        {"chosen": "\n\nHuman: 2+3?\n\nAssistant: 5", "rejected": "\n\nHuman: 2+3?\n\nAssistant: 8"},  # HH-RLHF
    ]
    feedback = to_feedback(pairs, "p.jsonl")
    assert [(f["completion"][0]["content"], f["label"]) for f in feedback] == [
        ("5", True), ("6", False), ("5", True), ("7", False), ("5", True), ("8", False)]
    assert all(f["prompt"] == PROMPT for f in feedback)


def test_a_ranking_gives_its_best_desirable_and_the_rest_undesirable():
    rows = [
        {"prompt": Q, "responses": ["5", "6", "9"]},  # best first
        {"prompt": Q, "responses": ["a", "b", "c"], "scores": [3, 3, 1]},  # a tie at the top: both desirable
        {"prompt": Q, "responses": ["x", "y"], "scores": [2, 2]},  # compares nothing: no feedback
    ]
    assert [(f["completion"][0]["content"], f["label"]) for f in to_feedback(rows, "r.jsonl")] == [
        ("5", True), ("6", False), ("9", False), ("a", True), ("b", True), ("c", False)]


def test_csv_labels_arrive_as_text(tmp_path):
    path = tmp_path / "thumbs.csv"
    path.write_text("prompt,completion,label\n2+3?,5,True\n2+3?,6,false\n2+3?,5,1\n")
    feedback = to_feedback(load_rows(str(path)).rows, str(path))
    assert [f["label"] for f in feedback] == [True, False, True]


def test_a_row_that_fits_no_format_names_the_row_and_the_formats():
    with pytest.raises(DataError) as err:
        to_feedback([{"prompt": Q, "completion": "5", "label": True}, {"prompt": Q, "completion": "5"}], "f.jsonl")
    message = str(err.value)
    assert "f.jsonl: row 2 fits no feedback format (columns found: prompt, completion)" in message
    for accepted in ("prompt+completion+label", "messages+label", "prompt+chosen+rejected", "prompt+responses"):
        assert accepted in message


@pytest.mark.parametrize("label", ["yes", 2, 0.5, [True]])
def test_a_label_that_is_not_true_or_false_is_an_error(label):
    with pytest.raises(DataError, match="row 1: 'label' must be true or false") as err:
        to_feedback([{"prompt": Q, "completion": "5", "label": label}], "f.jsonl")
    assert "prompt+completion+label" in str(err.value)


def test_builtin_feedback_is_deterministic_balanced_and_labelled_by_correctness():
    for split, size in (("train", 3000), ("test", 1000)):
        rows = load_builtin("arith-feedback", split)
        assert rows == load_builtin("arith-feedback", split) and len(rows) == size
        assert 0.45 < sum(r["label"] for r in rows) / size < 0.55
        assert all(r["label"] == is_correct(r["completion"], r["answer"]) for r in rows)
    train = {r["prompt"] for r in load_builtin("arith-feedback", "train")}
    assert not train & {r["prompt"] for r in load_builtin("arith-feedback", "test")}
    assert len(to_feedback(load_builtin("arith-feedback", "test"), "builtin:arith-feedback:test")) == 1000
