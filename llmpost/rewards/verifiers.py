"""Verifiable answer rewards: `exact_match` and `math`.

Both score 1.0 when the completion's final answer equals the row's `answer`
column and 0.0 otherwise; a row without an answer scores None (not applicable,
left out of the means). The answer is found as `answers.py` describes: a
`####` line, `\\boxed{}`, `<answer>` tags, else the last number.
"""

from __future__ import annotations

from llmpost.evaluation.answers import is_correct, is_math_correct


def exact_match(prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list[float | None]:
    """1.0 when the final answer equals `answer` (numerically when both are numbers), else 0.0."""
    return [None if row.get("answer") is None else float(is_correct(text, row["answer"]))
            for text, row in zip(completions, rows, strict=True)]


def math_answer(prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list[float | None]:
    """Like `exact_match`, but the answer may be LaTeX: `\\frac{1}{2}` = `0.5`, `50\\%` = `50`, `x=5` = `5`."""
    return [None if row.get("answer") is None else float(is_math_correct(text, row["answer"]))
            for text, row in zip(completions, rows, strict=True)]
