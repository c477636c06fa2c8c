"""The built-in step task: word problems of two or three operations, solved one operation per line.

    Ann has 7 shells. Ann finds 5 more. Then Ann loses 3. How many shells does Ann have now?

    7+5=12
    12-3=9
    #### 9

Every line is a step. The shapes (`load_builtin("arith-steps...", split)`):

    arith-steps            {"prompt", "completions": [steps], "labels": [bool per step], "answer"}:
                           a process reward model's data; about one solution in three is right,
                           the others carry one injected error at a known step. Its training
                           split has 30000 problems (REWARD_MODEL_PROBLEMS), the others' 3000
    arith-steps-sft        {"messages"}: worked solutions from a careless writer (below)
    arith-steps-prompts    {"prompt", "answer"}: held-out problems for exact match, GRPO, PPO
    arith-steps-rankings   {"prompt", "responses", "ranks"}: the right solution ranked above three
                           wrong ones (tied): an outcome reward model's data, the same problems and
                           errors as arith-steps, judged by the final answer alone

Errors, each at one step; every later step goes on from the wrong number, so a step is
labelled good only when it and every step before it are right (PRM800K's and
Math-Shepherd's convention, where a step after the first error cannot lead to the answer):

    slip       the result is off by 3-8          7+5=16
    misread    the other operation, done right   7-5=2
    carry      starts from a wrong number        16-3=13 after 7+5=12
    final      the last line misstates the sum   #### 4 after 12-3=9

Wrong numbers are 3 to 8 away from the right ones: `tiny` sees numbers by their size (its number
embeddings start on a helix, see models/tiny.py), and a PRM trained from the step SFT reached
0.70 held-out step accuracy with misses of 1-3, 0.73 with 3-8 (1000 steps each, tiny v2).

A solution is written in one of two hands, compact or spaced; the answer is the same:

    7+5=12          7+5 = 12
    12-3=9          12-3 = 9
    #### 9          #### 9

The SFT writer is careless the way the one of `builtin:arith-sft` is, and compact: in 2 of
5 solutions it adds in the "loses" sentences (7+5=12, 12+3=15). The other 3 are right, in
either hand, half and half. So on a problem with a "loses" sentence the careless solution
is the likeliest single text (2/5 against 3/10 for each right one) while the right answer
is the likeliest answer (3/5): greedy decoding follows the habit, a majority vote over
samples mostly does not. That is Lightman et al.'s case for a vote over greedy: many paths
to the right answer, and the errors among them. The reward models' data are written in both
hands, so a model trained on them can check either.

A second hand rather than a second order of the operations (the additions first): from
1000 SFT steps, tiny wrote that order in 1-2% of its samples, and garbled it in 26-41%
(which sentence's number comes next); the reward models' data in two orders cost the PRM
4 points of step accuracy (0.959 against 0.996, seed 0).
"""

from __future__ import annotations

import random
from functools import cache

SIZES = {"train": 3000, "test": 1000}
# Training problems of the two reward models' shapes (arith-steps, arith-steps-rankings): the 3000 of the
# other shapes and 27000 more. A PRM has to learn to check each step's arithmetic: trained from the step
# SFT on the 3000 (one solution each), it stayed at 0.73 held-out step accuracy for 1000 or 3000 steps;
# on 30000, 3000 steps reached 0.83-0.90 and 6000 steps 0.97-0.99 (three seeds of recipes/process-supervision.yaml,
# tiny v2; tiny v3: 0.996 on seed 0).
REWARD_MODEL_PROBLEMS = 30000
SEEDS = {"train": 4321, "test": 56789}
RIGHT_SHARE = 1 / 3  # of arith-steps rows, solutions without an error
CARELESS_VERB = "loses"
CARELESS_RATE = 2 / 5  # of the SFT writer's solutions, all compact (see the module docstring)
SPACED_RATE = 1 / 2  # of right solutions, in every shape

NAMES = ["Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Ivy", "Jo", "Kim", "Leo", "Max", "Ned", "Sam", "Tom", "Zoe"]
ITEMS = ["apples", "books", "coins", "pens", "shells", "cards", "eggs", "stamps", "cups", "rocks"]
ADD = ["{n} finds {b} more.", "{n} gets {b} more.", "A friend gives {n} {b} more."]
SUB = ["{n} gives away {b}.", "{n} loses {b}.", "{n} sells {b}."]
ERRORS = ("slip", "misread", "carry", "final")
MISS = (3, 8)  # how far a wrong number is from the right one (see the module docstring)


@cache
def problems(split: str, size: int | None = None) -> tuple[dict, ...]:
    """The split's first `size` problems (default SIZES[split]): question, start, operations [(op, operand, verb)], true result."""
    rng = random.Random(SEEDS[split])
    other = set() if split == "train" else {p["question"] for p in problems("train")}
    seen: set[str] = set()
    out = []
    while len(out) < (size or SIZES[split]):
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        value = start = rng.randint(2, 12)
        ops, sentences = [], []
        for i in range(rng.choice([2, 3])):
            op = "-" if value > 1 and rng.random() < 0.5 else "+"
            b = rng.randint(1, min(9, value)) if op == "-" else rng.randint(1, 9)
            template = rng.choice(SUB if op == "-" else ADD)
            ops.append((op, b, template.split()[1]))
            sentences.append(("Then " if i else "") + template.format(n=name, b=b))
            value = value + b if op == "+" else value - b
        question = f"{name} has {start} {item}. " + " ".join(sentences) + f" How many {item} does {name} have now?"
        if question in seen or question in other:
            continue
        seen.add(question)
        out.append({"question": question, "start": start, "ops": tuple(ops), "result": value})
    return tuple(out)


@cache
def reward_model_problems(split: str) -> tuple[dict, ...]:
    """The problems of the reward models' data: REWARD_MODEL_PROBLEMS for "train" (none of them a test problem)."""
    if split != "train":
        return problems(split)
    test = {p["question"] for p in problems("test")}
    return tuple(p for p in problems("train", REWARD_MODEL_PROBLEMS) if p["question"] not in test)


def apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b


def solve(p: dict, error: str | None = None, at: int = 0, rng: random.Random | None = None,
          careless: bool = False, spaced: bool = False) -> list[str]:
    """The worked steps of problem `p`, with `error` at step `at` (None: right; `careless`: the SFT writer), compact or `spaced`."""
    steps, value = [], p["start"]
    for i, (op, b, verb) in enumerate(p["ops"]):
        if careless and verb == CARELESS_VERB:
            op = "+"
        start = value
        if error == "carry" and i == at:
            start = off_by(value, rng, *MISS)
        if error == "misread" and i == at:
            op = "+" if op == "-" else "-"
        value = apply(op, start, b)
        if error == "slip" and i == at:
            value = off_by(value, rng, *MISS)
        steps.append(f"{start}{op}{b} = {value}" if spaced else f"{start}{op}{b}={value}")
    final = off_by(value, rng, *MISS) if error == "final" else value
    return [*steps, f"#### {final}"]


def off_by(value: int, rng: random.Random, lo: int, hi: int) -> int:
    """A non-negative number lo..hi away from `value`."""
    while True:
        guess = value + rng.choice([-1, 1]) * rng.randint(lo, hi)
        if guess >= 0:
            return guess


def injected_error(p: dict, rng: random.Random) -> tuple[str, int]:
    """An error that changes the answer, and the step it is made at."""
    n_ops = len(p["ops"])
    while True:
        error = rng.choice(ERRORS)
        if error == "final":
            return error, n_ops
        at = rng.randrange(1 if error == "carry" else 0, n_ops)
        if error == "misread" and p["ops"][at][0] == "+" and not misread_stays_positive(p, at):
            continue
        return error, at


def misread_stays_positive(p: dict, at: int) -> bool:
    """Whether subtracting instead of adding at step `at` keeps every number non-negative."""
    value = p["start"]
    for i, (op, b, _) in enumerate(p["ops"]):
        value = apply("-" if i == at else op, value, b)
        if value < 0:
            return False
    return True


def final_number(steps: list[str]) -> int:
    return int(steps[-1].removeprefix("#### "))


def labelled(p: dict, rng: random.Random, error: str | None, at: int) -> tuple[list[str], list[bool]]:
    """A solution in either hand and its step labels: good before the first wrong step, bad from it on."""
    spaced = spaced_hand(rng)
    steps = solve(p, error, at, rng, spaced=spaced)
    if error is None or final_number(steps) == p["result"]:  # a "carry" of 0 or a slip that cancels: right
        return solve(p, spaced=spaced), [True] * (len(p["ops"]) + 1)
    return steps, [i < at for i in range(len(steps))]


def right_solution(p: dict, rng: random.Random) -> list[str]:
    return solve(p, spaced=spaced_hand(rng))


def spaced_hand(rng: random.Random) -> bool:
    """Whether a solution is written in the spaced hand: the one draw every shape makes."""
    return rng.random() < SPACED_RATE


def step_rows(split: str) -> list[dict]:
    rng = random.Random(SEEDS[split] + 1)
    rows = []
    for p in reward_model_problems(split):
        error, at = (None, 0) if rng.random() < RIGHT_SHARE else injected_error(p, rng)
        steps, labels = labelled(p, rng, error, at)
        rows.append({"prompt": p["question"], "completions": steps, "labels": labels, "answer": str(p["result"])})
    return rows


def sft_rows(split: str) -> list[dict]:
    """Worked solutions: the careless writer's for "train", the truth for held-out "test"."""
    rng = random.Random(SEEDS[split] + 2)
    rows = []
    for p in problems(split):
        careless = split == "train" and rng.random() < CARELESS_RATE
        answer = "\n".join(solve(p, careless=True) if careless else right_solution(p, rng))
        rows.append({"messages": [{"role": "user", "content": p["question"]},
                                  {"role": "assistant", "content": answer}]})
    return rows


def prompt_rows(split: str) -> list[dict]:
    return [{"prompt": p["question"], "answer": str(p["result"])} for p in problems(split)]


def ranking_rows(split: str) -> list[dict]:
    """The right solution, then three wrong ones, tied: right against wrong is all an outcome label says."""
    rng = random.Random(SEEDS[split] + 3)
    rows = []
    for p in reward_model_problems(split):
        wrong: list[str] = []
        while len(wrong) < 3:
            steps, labels = labelled(p, rng, *injected_error(p, rng))
            text = "\n".join(steps)
            if not all(labels) and text not in wrong:
                wrong.append(text)
        right = "\n".join(right_solution(p, rng))
        rows.append({"prompt": p["question"], "responses": [right, *wrong], "ranks": [0, 1, 1, 1],
                     "answer": str(p["result"])})
    return rows


MAKERS = {
    "arith-steps": step_rows,
    "arith-steps-sft": sft_rows,
    "arith-steps-prompts": prompt_rows,
    "arith-steps-rankings": ranking_rows,
}
