"""Step-labelled solutions, the data of a process reward model (`llmpost prm`).

Every accepted row becomes a `StepRow`: the prompt, the solution's steps in order and
one label per step in [0, 1] (1 = the step is good). Accepted rows, as published:

    prompt + completions + labels   stepwise (TRL's format; trl-lib/prm800k, trl-lib/math_shepherd):
                                    `completions` the steps, `labels` one per step, bool or number
    input + label                   Math-Shepherd (peiyi9979/Math-Shepherd): `input` the question and
                                    its steps, each step ending in the tag "ки"; `label` the same
                                    text with "+" (good) or "-" (bad) in each tag's place
    question + label.steps          PRM800K (openai/prm800k), as released: each step lists rated
                                    completions (rating -1, 0 or +1) and `chosen_completion`; the
                                    solution follows the chosen ones

PRM800K's ratings: +1 and 0 (neutral: "reasonable, not wrong") are good steps, -1 is bad;
Lightman et al. count neutral steps as good when they read a solution's first error. Where
a step has no chosen completion, labelling stopped there: its -1-rated completion ends the
solution (the first error), or, with none, its first completion does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from llmpost.data.formats import RowProblem, as_prompt, as_text, convert_rows, has, kind_of, user

STEP_HINT = (
    "step-labelled rows are: prompt + completions (list of steps) + labels (one bool or number in [0, 1] per "
    "step); Math-Shepherd input + label (steps tagged 'ки', labelled '+'/'-'); or PRM800K question + label.steps "
    "(rated completions); built-in: builtin:arith-steps"
)
SHEPHERD_TAG = "ки"
SHEPHERD_LABELS = {"+": 1.0, "-": 0.0}
PRM800K_RATINGS = {1: 1.0, 0: 1.0, -1: 0.0}


@dataclass(frozen=True)
class StepRow:
    prompt: list[dict]
    steps: list[str]
    labels: list[float]

    @property
    def first_error(self) -> int | None:
        """The index of the first bad step (label below 0.5), None when every step is good."""
        return next((i for i, label in enumerate(self.labels) if label < 0.5), None)


def to_step_rows(rows: Iterable[dict], source: str) -> list[StepRow]:
    """Normalize step-labelled rows (see the module docstring); a row that fits none is a DataError."""
    return convert_rows(rows, source, _detect, "step-labelled", STEP_HINT)


def is_step_labelled(row: dict) -> bool:
    """Whether `row` has the columns of one of the step-labelled shapes."""
    return isinstance(row, dict) and _detect(row) is not None


def _detect(row: dict):
    if has(row, "prompt", "completions", "labels"):
        return _from_stepwise
    if has(row, "input", "label") and isinstance(row["input"], str):
        return _from_shepherd
    if has(row, "question", "label") and isinstance(row["label"], dict):
        return _from_prm800k
    return None


def _from_stepwise(row: dict) -> StepRow:
    steps, labels = row["completions"], row["labels"]
    if not isinstance(steps, list) or not steps:
        raise RowProblem(f"'completions' must be a non-empty list of steps, got {kind_of(steps)}")
    if not isinstance(labels, list) or len(labels) != len(steps):
        raise RowProblem(f"'labels' must be a list with one label per step ({len(steps)} steps), got "
                         + (f"{len(labels)} labels" if isinstance(labels, list) else kind_of(labels)))
    return StepRow(as_prompt(row["prompt"]), [as_text(s, f"step {i + 1}") for i, s in enumerate(steps)],
                   [as_label(v, f"label {i + 1}") for i, v in enumerate(labels)])


def as_label(value: object, what: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise RowProblem(f"{what} must be a boolean or a number in [0, 1], got {value!r}")


def _from_shepherd(row: dict) -> StepRow:
    text, label = row["input"], as_text(row["label"], "'label'")
    pieces = text.split(SHEPHERD_TAG)
    if len(pieces) < 2:
        raise RowProblem(f"'input' has no step tag {SHEPHERD_TAG!r}: Math-Shepherd ends every step with it")
    labels, at = [], 0
    for piece in pieces[:-1]:  # the label text has one character where the input has the two-letter tag
        at += len(piece)
        mark = label[at : at + 1]
        if mark not in SHEPHERD_LABELS:
            raise RowProblem(f"'label' has {mark!r} where 'input' has step tag {len(labels) + 1}; expected '+' or '-'")
        labels.append(SHEPHERD_LABELS[mark])
        at += 1
    question, first = split_question(pieces[0])
    steps = [first, *(p.strip() for p in pieces[1:-1])]
    return StepRow([user(question)], steps, labels)


def split_question(text: str) -> tuple[str, str]:
    """(question, first step) of Math-Shepherd's first segment: the steps begin at "Step 1:"."""
    at = text.find("Step 1:")
    if at <= 0:
        raise RowProblem("'input' has no \"Step 1:\" after the question, so the question cannot be told apart")
    return text[:at].strip(), text[at:].strip()


def _from_prm800k(row: dict) -> StepRow:
    question = row["question"]
    problem = question.get("problem") if isinstance(question, dict) else question
    problem = as_text(problem, "'question.problem'")
    steps_in = row["label"].get("steps")
    if not isinstance(steps_in, list) or not steps_in:
        raise RowProblem("'label.steps' must be a non-empty list of rated steps")
    steps, labels = [], []
    for n, step in enumerate(steps_in, 1):
        text, rating, last = prm800k_step(step, n)
        steps.append(text)
        labels.append(PRM800K_RATINGS[rating])
        if last:
            break
    return StepRow([user(problem)], steps, labels)


def prm800k_step(step: object, n: int) -> tuple[str, int, bool]:
    """(text, rating, whether the solution ends here) of PRM800K's step `n`."""
    completions = step.get("completions") if isinstance(step, dict) else None
    human = step.get("human_completion") if isinstance(step, dict) else None
    if not completions and not human:
        raise RowProblem(f"label.steps[{n}] has no completions")
    chosen = step.get("chosen_completion")
    if chosen is None and human:
        return as_text(human.get("text") if isinstance(human, dict) else human, f"step {n} text"), 1, False
    if chosen is None:
        pick = next((c for c in completions if c.get("rating") == -1), completions[0])
        last = True
    else:
        pick, last = completions[chosen], False
    rating = pick.get("rating")
    if rating not in PRM800K_RATINGS:
        raise RowProblem(f"label.steps[{n}] has rating {rating!r}; PRM800K rates -1, 0 or 1")
    return as_text(pick.get("text"), f"step {n} text"), rating, last
