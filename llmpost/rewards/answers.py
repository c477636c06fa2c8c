"""Extract a final answer from a model's text and compare it with a reference.

Understands, in this order of preference: a GSM8K `#### 42` line, `\\boxed{42}`,
`<answer>42</answer>` tags, and finally the last number in the text.
"""

from __future__ import annotations

import re

NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
PATTERNS = [
    re.compile(r"####\s*(" + NUMBER + ")"),
    re.compile(r"\\boxed\{\s*(" + NUMBER + r")\s*\}"),
    re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S),
]
LAST_NUMBER = re.compile(NUMBER)


def extract_answer(text: str) -> str | None:
    """The final answer in `text`, or None when there is none."""
    for pattern in PATTERNS:
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    numbers = LAST_NUMBER.findall(text)
    return numbers[-1] if numbers else None


def reference_answer(reference: str) -> str | None:
    """A reference column may hold a bare answer ("42") or a worked solution ending in "#### 42"."""
    return extract_answer(str(reference)) if reference is not None else None


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """Numeric comparison when both parse as numbers, else exact string comparison."""
    if predicted is None or reference is None:
        return False
    a, b = to_number(predicted), to_number(reference)
    if a is not None and b is not None:
        return abs(a - b) < 1e-6
    return predicted.strip() == reference.strip()


def to_number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None


def is_correct(completion: str, reference: str | None) -> bool:
    """Whether `completion`'s final answer equals the reference's."""
    return answers_match(extract_answer(completion), reference_answer(reference))
