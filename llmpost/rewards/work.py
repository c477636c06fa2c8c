"""The `checked_answer` reward: a correct final answer counts only when the work shown holds.

An outcome reward pays a lucky guess in full. On the built-in task, of the tiny SFT
model's sampled answers that end in the right number, 65% (500 SFT steps) and 30%
(1000 steps) got there with wrong work: a miscopied operand, or an equation whose
result differs from the `####` line. `exact_match` pays those in full; after GRPO on it
(500-step SFT, lr 2e-4), 77% of greedy answers miscopied an operand, against 11% before.
Checking the work did not by itself keep GRPO from lowering that model's exact match
(0.195 vs 0.145 with exact_match at lr 2e-4; 0.145 vs 0.22 at lr 1e-4, 60 steps).
`checked_answer` pays 1.0 only when

    the final answer equals the row's `answer` (as `exact_match` does),
    every arithmetic equation in the completion holds ("18+17=35", "<<48/2=24>>",
    "2 + 3 * 4 = 14"), and the last equation's result is the final answer.

A completion with no equation is scored on its answer alone: there is no work to check.
"""

from __future__ import annotations

import ast
import operator
import re

from llmpost.evaluation.answers import answers_match, is_correct, reference_answer

NUMBER = r"\d[\d,]*(?:\.\d+)?"
# An arithmetic expression of two or more numbers, "=", a result; not preceded by a digit or a point,
# so "12.5+1=13.5" is read whole. "×" and "÷" are read as * and /.
EQUATION = re.compile(rf"(?<![\d.])(-?{NUMBER}(?:\s*[-+*/×÷]\s*{NUMBER})+)\s*=\s*(-?{NUMBER})")
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def checked_answer(prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list[float | None]:
    """1.0 for a right final answer reached by work that holds, else 0.0 (None without an `answer`)."""
    return [None if row.get("answer") is None else float(answer_with_valid_work(text, row["answer"]))
            for text, row in zip(completions, rows, strict=True)]


def answer_with_valid_work(text: str, reference: str) -> bool:
    if not is_correct(text, reference):
        return False
    equations = EQUATION.findall(text)
    if not equations:
        return True
    if not all(holds(expression, result) for expression, result in equations):
        return False
    return answers_match(equations[-1][1], reference_answer(reference))


def holds(expression: str, result: str) -> bool:
    """Whether `expression` (numbers and + - * /) evaluates to `result`, to within rounding."""
    value = evaluate(expression.replace(",", "").replace("×", "*").replace("÷", "/"))
    expected = float(result.replace(",", ""))
    return value is not None and abs(value - expected) <= 1e-6 * max(1.0, abs(expected))


def evaluate(expression: str) -> float | None:
    """The value of an arithmetic expression, with the usual precedence; None if it is not one (or divides by 0)."""
    try:
        tree = ast.parse(expression, mode="eval").body
        return _value(tree)
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](_value(node.left), _value(node.right))
    raise ValueError("not arithmetic")
