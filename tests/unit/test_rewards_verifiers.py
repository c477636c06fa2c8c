"""The built-in verifiable rewards: exact_match, math, checked_answer, format and length."""

from __future__ import annotations

import math

import pytest

from llmpost.errors import ConfigError
from llmpost.evaluation.answers import extract_boxed, extract_math_answer, math_equal
from llmpost.rewards.format import format_reward
from llmpost.rewards.length import length_reward
from llmpost.rewards.verifiers import exact_match, math_answer
from llmpost.rewards.work import checked_answer

PROMPT = [{"role": "user", "content": "Ann has 7 pens and gets 5 more. How many pens?"}]


def score(fn, completions, answers):
    return fn([PROMPT] * len(completions), completions, [{"answer": a} for a in answers])


@pytest.mark.parametrize("completion, expected", [
    ("7+5=12\n#### 12", 1.0),  # the built-in task's own format
    ("The answer is \\boxed{12}.", 1.0),
    ("<think>7+5</think><answer>12</answer>", 1.0),
    ("7 plus 5 makes 12", 1.0),  # the last number
    ("#### 12.0", 1.0),  # numeric comparison
    ("7+5=12\n#### 13", 0.0),  # the final line wins over an earlier 12
    ("I do not know", 0.0),
    ("", 0.0),
])
def test_exact_match_finds_the_final_answer(completion, expected):
    assert score(exact_match, [completion], ["12"]) == [expected]


def test_exact_match_reads_worked_reference_solutions():
    assert score(exact_match, ["#### 1,000"], ["so in total 1000 apples\n#### 1000"]) == [1.0]


def test_a_row_without_answer_is_not_applicable():
    assert exact_match([PROMPT], ["12"], [{"answer": None}]) == [None]
    assert math_answer([PROMPT], ["12"], [{}]) == [None]


@pytest.mark.parametrize("completion, reference", [
    ("so the answer is $\\boxed{\\frac{1}{2}}$", "0.5"),
    ("\\boxed{\\dfrac{3}{4}}", "3/4"),
    ("\\boxed{50\\%}", "50"),
    ("x = 5", "5"),
    ("#### 1,234", "1234"),
    ("<answer>\\frac12</answer>", "\\frac{1}{2}"),
    ("\\boxed{3\\sqrt{2}}", "3\\sqrt{2}"),
    ("\\boxed{\\frac{1}{2}}", "The final answer is \\boxed{0.5}"),
])
def test_math_accepts_equivalent_spellings(completion, reference):
    assert math_answer([PROMPT], [completion], [{"answer": reference}]) == [1.0]


@pytest.mark.parametrize("completion, reference", [
    ("\\boxed{\\frac{1}{3}}", "0.5"),
    ("\\boxed{3\\sqrt{3}}", "3\\sqrt{2}"),
    ("no answer here", "4"),
])
def test_math_rejects_different_answers(completion, reference):
    assert math_answer([PROMPT], [completion], [{"answer": reference}]) == [0.0]


def test_boxed_content_keeps_nested_braces():
    assert extract_boxed("first \\boxed{1} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert extract_boxed("\\boxed{\\frac{1}{2}") is None  # cut off mid-answer
    assert extract_math_answer("steps... #### 42") == "42"
    assert math_equal("1/2", "0.5") and not math_equal("1/0", "0")


def test_format_default_is_r1_zero_think_then_answer():
    reward = format_reward()
    completions = ["<think>7+5 is 12</think>\n<answer>12</answer>",
                   "<think>\nmulti\nline\n</think><answer>12</answer>  ",
                   "<answer>12</answer>",  # no reasoning
                   "<think>x</think><answer>12</answer> and more",  # trailing text
                   "12"]
    assert reward([PROMPT] * 5, completions, [{}] * 5) == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_format_takes_a_custom_regex_and_rejects_a_broken_one():
    reward = format_reward(r"#### \d+")
    assert reward([PROMPT] * 2, ["#### 12", "7+5=12\n#### 12"], [{}] * 2) == [1.0, 0.0]
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        format_reward("<think>(")


def test_length_is_zero_inside_the_band_and_falls_to_minus_one_outside():
    reward = length_reward("min=10,max=20")
    texts = ["x" * 15, "x" * 10, "x" * 20, "x" * 30, "x" * 100, "x" * 5, ""]
    values = reward([PROMPT] * len(texts), texts, [{}] * len(texts))
    assert values[:3] == [0.0, 0.0, 0.0]
    assert math.isclose(values[3], -0.5) and values[4] == -1.0
    assert math.isclose(values[5], -0.5) and values[6] == -1.0


def test_length_options_are_checked():
    with pytest.raises(ConfigError, match="unknown option"):
        length_reward("maximum=3")
    with pytest.raises(ConfigError, match="min <= max"):
        length_reward("min=30,max=20")


@pytest.mark.parametrize(("completion", "answer", "expected"), [
    ("7+5=12\n#### 12", "12", 1.0),                   # right answer, work holds
    ("7+5=11\n#### 12", "12", 0.0),                   # a lucky guess: exact_match pays it, this does not
    ("7+5=12\n#### 11", "12", 0.0),                   # wrong answer
    ("7+5=12, 12*2=25\n#### 24", "24", 0.0),          # one false step is enough
    ("#### 12", "12", 1.0),                            # no work to check: the answer decides
    ("He sold 48/2 = <<48/2=24>>24, then 48+24 = <<48+24=72>>72.\n#### 72", "72", 1.0),  # GSM8K annotations
    ("2 + 3 * 4 = 14, so #### 14", "14", 1.0),         # precedence
    ("1,000+24=1,024\n#### 1024", "1024", 1.0),       # thousands separators
    ("12.5+1=13.5\n#### 13.5", "13.5", 1.0),          # decimals read whole
    ("5/0=1\n#### 1", "1", 0.0),                      # division by zero never holds
    ("7+5=12, 12-2=10\n#### 12", "12", 0.0),          # the last equation must give the answer
])
def test_checked_answer_pays_only_for_work_that_holds(completion, answer, expected):
    assert score(checked_answer, [completion], [answer]) == [expected]
    if expected:
        assert score(exact_match, [completion], [answer]) == [1.0]
