"""evaluation/heldout.py on the real tiny model: one item per held-out row, checked and scored."""

from __future__ import annotations

import math

import pytest

from llmpost.evaluation.answers import extract_answer
from llmpost.evaluation.generation import generate
from llmpost.evaluation.heldout import evaluate, prompt_id


@pytest.fixture(scope="module")
def tiny():
    from llmpost.models.load import load_model, load_tokenizer, resolve_model

    src = resolve_model("tiny")
    return load_model(src), load_tokenizer(src, False)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


ROWS = [{"prompt": ask("What is 2 plus 3?"), "answer": "5"},
        {"prompt": ask("Say hi.")},  # no reference answer
        {"prompt": ask("What is 7 minus 4?"), "answer": "3"}]


def length_reward(prompts, completions, rows):
    """The weighted total and each part, as CombinedReward returns them; `nan` where a part does not apply."""
    lengths = [float(len(c)) for c in completions]
    has_answer = [1.0 if r.get("answer") is not None else math.nan for r in rows]
    return [a + (0.0 if math.isnan(b) else b) for a, b in zip(lengths, has_answer, strict=True)], \
        {"length": lengths, "answered": has_answer}


def test_items_keep_row_order_answers_and_rewards(tiny):
    model, tok = tiny
    outputs = generate(model, tok, [r["prompt"] for r in ROWS], max_new_tokens=8)
    # a reference equal to the model's own answer is correct; any other is not
    rows = [dict(ROWS[0], answer=extract_answer(outputs[0])), ROWS[1], dict(ROWS[2], answer="not a number")]
    result = evaluate(model, tok, rows, max_new_tokens=8, reward=length_reward)

    assert [i.index for i in result.items] == [0, 1, 2]
    assert [i.output for i in result.items] == outputs  # greedy: the same answers as generating directly
    assert [i.correct for i in result.items] == [True, None, False]
    assert result.exact_match == 0.5  # the row without a reference counts in no rate
    assert [i.reward for i in result.items] == [len(outputs[0]) + 1.0, float(len(outputs[1])), len(outputs[2]) + 1.0]
    assert result.items[1].rewards == {"length": float(len(outputs[1])), "answered": None}  # NaN -> None
    assert result.rewards()["answered"] == 1.0
    assert result.items[2].prompt == "What is 7 minus 4?" and result.items[2].id == prompt_id(ROWS[2]["prompt"])


def test_without_a_reward_rows_without_a_reference_are_not_generated(tiny):
    model, tok = tiny
    result = evaluate(model, tok, ROWS, max_new_tokens=4)
    assert [i.index for i in result.items] == [0, 2]
    assert all(i.reward is None and i.rewards == {} for i in result.items)
    assert evaluate(model, tok, [ROWS[1]], max_new_tokens=4).items == []


def test_prompt_id_follows_the_conversation_not_its_position():
    assert prompt_id(ask("a")) == prompt_id(ask("a")) != prompt_id(ask("b"))
    assert prompt_id([{"role": "system", "content": "be brief"}, *ask("a")]) != prompt_id(ask("a"))


def test_known_outputs_are_checked_and_scored_without_generating_them_again(tiny):
    """Answers the same model already gave are reused: only the prompts without one are generated."""
    model, tok = tiny
    fresh = evaluate(model, tok, ROWS, max_new_tokens=8, reward=length_reward)
    known = {prompt_id(ROWS[0]["prompt"]): "2+3=5\n#### 5"}  # not what tiny says: proves it was taken as given
    reused = evaluate(model, tok, ROWS, max_new_tokens=8, reward=length_reward, known_outputs=known)
    assert reused.items[0].output == "2+3=5\n#### 5" and reused.items[0].correct is True
    assert reused.items[0].reward == len("2+3=5\n#### 5") + 1.0
    assert [i.output for i in reused.items[1:]] == [i.output for i in fresh.items[1:]]
    every = {prompt_id(r["prompt"]): "0" for r in ROWS}
    assert [i.output for i in evaluate(None, tok, ROWS, known_outputs=every).items] == ["0", "0"]  # no model needed
