"""What the judge is asked and how its reply is read.

Templates are plain text with placeholders:

    pairwise   {question} {a} {b} [{principles}]   the reply names A or B (or a tie)
    pointwise  {question} {answer} [{principles}]  the reply is a score from 1 to 10

The default pairwise template is the one the built-in judge data teaches
(`llmpost.data.builtin.JUDGE_TEMPLATE`), so a tiny judge trained with
`llmpost sft --data builtin:arith-judge` works with no settings at all. Principles
(a constitution-style rubric) go where the template says `{principles}`, or else
into the system message.

Parsing accepts the terse replies small judges give ("A") and the long forms real
models write ("Answer B is correct.", "[[A]]", "Verdict: B", "Both are equally
good"). A reply that names both letters in conflicting ways is not guessed at: it
is unparsable and is counted as such.
"""

from __future__ import annotations

import re

from llmpost.data.builtin import JUDGE_TEMPLATE

PAIRWISE_TEMPLATE = JUDGE_TEMPLATE
POINTWISE_TEMPLATE = (
    "Question: {question}\nAnswer: {answer}\n"
    "Rate the answer from 1 (wrong or unhelpful) to 10 (correct and helpful). Reply with the number only."
)
PAIRWISE_FIELDS = {"question", "a", "b", "principles"}
POINTWISE_FIELDS = {"question", "answer", "principles"}
PRINCIPLES_INTRO = "Judge the answers by these principles:"

PLACEHOLDER = re.compile(r"\{(\w+)\}")
TIE, VERDICTS = "tie", ("A", "B", "tie")

# The whole reply is one letter, perhaps decorated: "A", "(b)", "**A**", "[[B]]", "A."
BARE_LETTER = re.compile(r"^[\s*\[(\"'`]*([AB])[\s*\])\"'`.!:]*$", re.I)
# MT-Bench style final verdicts: [[A]], [[B]], [[C]] (tie).
BRACKETED = re.compile(r"\[\[\s*([ABC])\s*\]\]")
# Statements that name the winner. The words match in any case, the letter only as a capital,
# since "a" is also an article ("the decision is a close one").
LABEL = r"(?i:(?:answer|response|option)\s+)?"
STATEMENTS = [
    re.compile(r"\b(?i:verdict|final answer|decision|choice|winner|preferred(?: answer| response)?)\s*(?i:is|:)\s*\**\s*"
               + LABEL + r"\(?([AB])\)?\b"),
    re.compile(r"\b(?i:answer|response|option|assistant|output)\s+\(?([AB])\)?\s+(?i:is)\s+"
               r"(?i:the\s+)?(?i:more\s+)?(?i:correct|better|right|preferred|accurate)\b"),
    re.compile(r"\b(?i:the\s+)?(?i:correct|better|right|preferred)\s+(?i:answer|response|one|option)\s+(?i:is)\s+"
               + LABEL + r"\(?([AB])\)?\b"),
    re.compile(r"\bI\s+(?i:choose|pick|prefer|select)\s+" + LABEL + r"\(?([AB])\)?\b"),
    re.compile(r"(?:^|\s)\(?([AB])\)?\s+(?i:is)\s+(?i:the\s+)?(?i:more\s+)?(?i:correct|better|right|preferred)\b"),
]
# A reply that starts with the letter and then explains: "A\nBecause ...", "B: it adds up", "A - ..."
LEADING_LETTER = re.compile(r"^\s*\**\(?([AB])\)?\**\s*(?:\n|[.:,)\-]|$)")
TIE_WORDS = re.compile(
    r"\b(?:tie|draw|both (?:are |answers are |responses are )?(?:equally )?(?:correct|good|right|wrong|incorrect|bad)"
    r"|equally (?:good|correct|bad)|neither)\b",
    re.I,
)
SCORE_PATTERNS = [
    re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]"),
    re.compile(r"\b(?:rating|score)\s*(?:is|:|=)\s*(\d+(?:\.\d+)?)", re.I),
    re.compile(r"\b(\d+(?:\.\d+)?)\s*/\s*10\b"),
    re.compile(r"^\s*(\d+(?:\.\d+)?)\s*\.?\s*$"),
]


def placeholders(template: str) -> set[str]:
    """The `{name}` placeholders a template uses (JSON-like braces such as {"a": 1} are not placeholders)."""
    return set(PLACEHOLDER.findall(template))


def fill(template: str, values: dict[str, str]) -> str:
    """Substitute placeholders in one pass, so text inside an answer (even "{b}") is never re-substituted."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def question_text(prompt: list[dict]) -> str:
    """What the judge sees as the question: the user turn, or the whole conversation when there are several turns."""
    turns = [m for m in prompt if m["role"] != "system"]
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in turns)


def numbered(principles: list[str]) -> str:
    return "\n".join(f"{i}. {p}" for i, p in enumerate(principles, 1))


def build_messages(template: str, values: dict[str, str], *, system: str | None,
                   principles: list[str]) -> list[dict]:
    """The chat messages of one judge request: an optional system message, then the filled template."""
    listed = numbered(principles)
    body = fill(template, {**values, "principles": listed})
    if principles and "principles" not in placeholders(template):
        system = "\n\n".join(s for s in (system, f"{PRINCIPLES_INTRO}\n{listed}") if s)
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": body}]


def pairwise_messages(settings, prompt: list[dict], a: str, b: str) -> list[dict]:
    """The request comparing answer `a` (shown first) with answer `b` for `prompt`."""
    return build_messages(settings.template, {"question": question_text(prompt), "a": a, "b": b},
                          system=settings.system, principles=settings.principles)


def pointwise_messages(settings, prompt: list[dict], answer: str) -> list[dict]:
    """The request scoring one answer from 1 to 10."""
    return build_messages(settings.score_template, {"question": question_text(prompt), "answer": answer},
                          system=settings.system, principles=settings.principles)


def parse_verdict(text: str | None) -> str | None:
    """"A", "B" or "tie" from a judge's reply; None when the reply names no clear winner."""
    if not text or not text.strip():
        return None
    bare = BARE_LETTER.match(text)
    if bare:
        return bare.group(1).upper()
    bracketed = set(BRACKETED.findall(text))
    if bracketed:
        return _single(bracketed, tie_letter="C")
    stated = {m.upper() for pattern in STATEMENTS for m in pattern.findall(text)}
    if stated:
        return _single(stated)
    leading = LEADING_LETTER.match(text)
    if leading:
        return leading.group(1)
    last_line = BARE_LETTER.match(text.strip().splitlines()[-1])
    if last_line:  # reasoning first, the letter last: "3+4=7\nA"
        return last_line.group(1).upper()
    return TIE if TIE_WORDS.search(text) else None


def _single(letters: set[str], tie_letter: str | None = None) -> str | None:
    """The one letter named, mapped to a verdict; None when the reply names both sides."""
    if len(letters) != 1:
        return None
    (letter,) = letters
    return TIE if letter == tie_letter else letter


def parse_score(text: str | None, low: float = 1.0, high: float = 10.0) -> float | None:
    """A pointwise score in [low, high] scaled to [0, 1]; None when there is none."""
    if not text:
        return None
    for pattern in SCORE_PATTERNS:
        found = pattern.search(text)
        if found:
            value = float(found.group(1))
            if low <= value <= high:
                return (value - low) / (high - low)
            return None
    return None
