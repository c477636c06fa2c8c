"""SFT and prompt formats normalize to TRL's conversational form, and bad rows say where."""

from __future__ import annotations

import json

import pytest

from llmpost.data.formats import SFT_HINT, to_prompts, to_sft
from llmpost.data.load import load_rows
from llmpost.errors import DataError

QUESTION, REPLY = "Ann has 3 pens and gets 4 more. How many pens?", "3+4=7\n#### 7"
EXPECTED = {
    "prompt": [{"role": "user", "content": QUESTION}],
    "completion": [{"role": "assistant", "content": REPLY}],
}

SFT_ROWS = {
    "messages": {
        "messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": REPLY}]
    },
    "prompt+completion strings": {"prompt": QUESTION, "completion": REPLY},
    "prompt+completion messages": {
        "prompt": [{"role": "user", "content": QUESTION}],
        "completion": [{"role": "assistant", "content": REPLY}],
    },
    "alpaca": {"instruction": QUESTION, "input": "", "output": REPLY},
    "alpaca without input": {"instruction": QUESTION, "output": REPLY},
    "sharegpt": {"conversations": [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": REPLY}]},
}


@pytest.mark.parametrize("name", SFT_ROWS)
def test_every_sft_format_normalizes_to_the_same_row(name):
    assert to_sft([SFT_ROWS[name]], "data.jsonl") == [EXPECTED]


def test_alpaca_input_follows_the_instruction():
    row = {"instruction": "Add the numbers.", "input": "3 and 4", "output": "7"}
    assert to_sft([row], "x")[0]["prompt"] == [{"role": "user", "content": "Add the numbers.\n\n3 and 4"}]


def test_system_and_earlier_turns_stay_in_the_prompt():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    row = to_sft([{"messages": messages}], "x")[0]
    assert row["prompt"] == messages[:-1]
    assert row["completion"] == messages[-1:]
    sharegpt = [
        {"from": "system", "value": "Be brief."},
        {"from": "user", "value": "q"},
        {"from": "assistant", "value": "a"},
    ]
    assert to_sft([{"conversations": sharegpt}], "x")[0]["prompt"][0] == {
        "role": "system",
        "content": "Be brief.",
    }


def test_mixed_formats_in_one_dataset():
    rows = list(SFT_ROWS.values())
    assert to_sft(rows, "x") == [EXPECTED] * len(rows)


def test_row_that_fits_no_format_names_row_and_columns():
    rows = [SFT_ROWS["messages"], {"text": "hello", "label": 1}]
    with pytest.raises(DataError) as err:
        to_sft(rows, "data.jsonl")
    assert err.value.message == "data.jsonl: row 2 fits no SFT format (columns found: text, label)"
    assert err.value.hint == SFT_HINT


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"messages": "hi"}, "'messages' must be a non-empty list"),
        ({"messages": [{"content": "hi"}]}, "message 1 has no 'role'"),
        (
            {"messages": [{"role": "user", "content": "hi"}]},
            "last message of 'messages' must be from the assistant",
        ),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "at least one turn before"),
        (
            {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]},
            "must be a string",
        ),
        ({"conversations": [{"from": "robot", "value": "x"}]}, "speaker 'robot'"),
        ({"prompt": "q", "completion": {"text": "a"}}, "'completion' must be a non-empty list"),
    ],
)
def test_wrong_types_name_the_row(row, problem):
    with pytest.raises(DataError, match=r"^x: row 2: ") as err:
        to_sft([SFT_ROWS["alpaca"], row], "x")
    assert problem in err.value.message


WIZARD = [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize(
    ("convert", "row", "problem"),
    [
        (to_sft, {"messages": WIZARD}, "'messages' message 1 has role 'wizard'"),
        (to_sft, {"prompt": WIZARD[:1], "completion": "hello"}, "'prompt' message 1 has role 'wizard'"),
        (
            to_sft,
            {"prompt": "hi", "completion": [{"role": "bot", "content": "x"}]},
            "'completion' message 1 has role 'bot'",
        ),
        (to_prompts, {"messages": WIZARD}, "'messages' message 1 has role 'wizard'"),
        (to_prompts, {"prompt": WIZARD[:1], "answer": "7"}, "'prompt' message 1 has role 'wizard'"),
    ],
)
def test_unknown_role_names_row_role_and_the_roles_accepted(convert, row, problem):
    with pytest.raises(DataError) as err:
        convert([SFT_ROWS["messages"], row], "chat.jsonl")
    assert err.value.message == f"chat.jsonl: row 2: {problem}; accepted roles: system, user, assistant"


def test_tool_and_capitalised_roles_are_refused_with_a_reason():
    tool = {"messages": [*WIZARD[1:], {"role": "tool", "content": "42"}, {"role": "assistant", "content": "x"}]}
    with pytest.raises(DataError, match="role 'tool'; .*tool calls and tool results are not supported"):
        to_sft([tool], "x")
    shouting = {"messages": [{"role": "User", "content": "hi"}, WIZARD[1]]}
    with pytest.raises(DataError, match=r"role 'User'; accepted roles: system, user, assistant \(lower case\)"):
        to_sft([shouting], "x")


def test_null_columns_count_as_absent():
    # Arrow-backed files fill a column missing from a row with None.
    row = {"messages": None, "prompt": QUESTION, "completion": REPLY, "instruction": None}
    assert to_sft([row], "x") == [EXPECTED]
    with pytest.raises(DataError, match=r"columns found: prompt\)"):
        to_sft([{"prompt": "q", "completion": None}], "x")


def test_loaded_csv_and_jsonl_normalize_alike(tmp_path):
    jsonl = tmp_path / "chat.jsonl"
    jsonl.write_text(json.dumps(SFT_ROWS["messages"]) + "\n")
    csv_path = tmp_path / "alpaca.csv"
    csv_path.write_text(f'instruction,input,output\n"{QUESTION}",,"{REPLY}"\n')
    for path in (jsonl, csv_path):
        loaded = load_rows(str(path))
        assert to_sft(loaded.rows, loaded.source) == [EXPECTED]


# --- prompts -----------------------------------------------------------------------------

PROMPT = [{"role": "user", "content": QUESTION}]


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": QUESTION, "answer": REPLY},
        {"prompt": PROMPT, "reference": REPLY},
        {"prompt": QUESTION, "solution": REPLY},
        {"prompt": QUESTION, "ground_truth": REPLY},
        {"question": QUESTION, "answer": REPLY},
        *SFT_ROWS.values(),
    ],
)
def test_every_prompt_format_gives_prompt_and_answer(row):
    assert to_prompts([row], "x") == [{"prompt": PROMPT, "answer": REPLY}]


def test_prompt_without_answer_and_extra_columns_kept():
    rows = [{"prompt": QUESTION, "tests": ["assert f() == 1"], "id": 7}]
    assert to_prompts(rows, "x") == [
        {"prompt": PROMPT, "answer": None, "tests": ["assert f() == 1"], "id": 7}
    ]


def test_gsm8k_answer_kept_verbatim_and_numbers_become_text():
    gsm8k = {"question": QUESTION, "answer": "She has 3+4=7 pens.\n#### 7"}
    assert to_prompts([gsm8k], "x")[0]["answer"] == "She has 3+4=7 pens.\n#### 7"
    assert to_prompts([{"prompt": QUESTION, "answer": 7}], "x")[0]["answer"] == "7"


def test_messages_without_final_assistant_are_all_prompt():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    assert to_prompts([{"messages": messages}], "x") == [{"prompt": messages, "answer": None}]


def test_prompt_row_that_fits_nothing():
    with pytest.raises(DataError, match=r"x: row 1 fits no prompt format \(columns found: text\)"):
        to_prompts([{"text": "hello"}], "x")
