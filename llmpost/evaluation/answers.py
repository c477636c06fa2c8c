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


# --- math answers (the `math` reward): LaTeX, fractions, percentages --------------------

BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
GSM8K_LINE = re.compile(r"####\s*([^\n]+)")
ANSWER_TAG = PATTERNS[2]
FRACTION = re.compile(r"^(-?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
SHORT_FRACTION = re.compile(r"^(-?)\\[dt]?frac(\d)(\d)$")  # \frac12
LATEX_NOISE = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\displaystyle", "$", "^\\circ", "^{\\circ}")
TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


def extract_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` in `text`, nested braces included; None when there is none."""
    starts = [m.end() for m in BOXED.finditer(text)]
    if not starts:
        return None
    depth, start = 1, starts[-1]
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i].strip()
    return None  # unbalanced: the answer was cut off


def extract_math_answer(text: str) -> str | None:
    """The final answer of a math solution: `#### ...`, `\\boxed{...}`, `<answer>...</answer>`, else the last number.

    Unlike `extract_answer`, the answer may be any expression (`\\frac{1}{2}`, `3\\sqrt{2}`, `x=5`).
    """
    for found in (GSM8K_LINE.findall(text), [extract_boxed(text)], ANSWER_TAG.findall(text)):
        found = [f for f in found if f]
        if found:
            return found[-1].strip()
    numbers = LAST_NUMBER.findall(text)
    return numbers[-1] if numbers else None


def normalize_math(answer: str) -> str:
    """A canonical spelling of a math answer, so `$\\dfrac{1}{2}$.` and `\\frac{1}{2}` compare equal."""
    text = answer.strip()
    inner = extract_boxed(text)
    text = inner if inner is not None else text
    text = TEXT_COMMAND.sub(r"\1", text)
    for noise in LATEX_NOISE:
        text = text.replace(noise, "")
    text = text.replace("\\%", "%").replace("dfrac", "frac").replace("tfrac", "frac")
    text = re.sub(r"\s+", "", text).rstrip(".")
    # "x = 5" and "y=5" answer with the value, not the variable name.
    if re.match(r"^[a-zA-Z]\w*=", text):
        text = text.split("=", 1)[1]
    return text


def math_value(answer: str) -> float | None:
    """The numeric value of a normalized answer ("1,000", "-3/4", "\\frac{3}{4}", "50%"), or None."""
    text = answer.replace(",", "")
    percent = text.endswith("%")
    text = text.rstrip("%")
    fraction = FRACTION.match(text) or SHORT_FRACTION.match(text)
    if fraction:
        text = f"{fraction[1]}{fraction[2]}/{fraction[3]}"
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100 if percent else value


def math_equal(predicted: str | None, reference: str | None) -> bool:
    """Whether two math answers agree: numerically when both have a value, else as normalized text."""
    if predicted is None or reference is None:
        return False
    a, b = normalize_math(predicted), normalize_math(reference)
    if a == b:
        return True
    va, vb = math_value(a), math_value(b)
    if va is None or vb is None:
        return False
    # "50%" answers "0.5" and "50" alike: graders accept either spelling of a percentage.
    candidates = {va, va * 100} if a.endswith("%") else {va}
    return any(abs(v - vb) <= 1e-6 * max(1.0, abs(vb)) for v in candidates)


def is_math_correct(completion: str, reference: str | None) -> bool:
    """Whether `completion`'s final math answer equals the reference's (a bare answer or a worked solution)."""
    if reference is None:
        return False
    ref = str(reference)
    ref_answer = extract_math_answer(ref) if ("####" in ref or "\\boxed" in ref or "<answer>" in ref) else ref
    return math_equal(extract_math_answer(completion), ref_answer)
