"""The built-in verifiable task: short arithmetic word problems with integer answers.

Generated deterministically (fixed seeds, fixed sizes), offline, in every shape a
stage needs. `load_builtin(name, split)` returns plain rows:

    arith-sft        {"messages": [user question, assistant "7+5=12\\n#### 12"]}
    arith-prompts    {"prompt": question, "answer": "12"}
    arith-rankings   {"prompt", "responses": [4 answers, best -> worst]}
    arith-pairs      {"prompt", "chosen", "rejected"}
    arith-feedback   {"prompt", "completion", "label"}: one answer per problem, right (true) or wrong (false)
    arith-judge      SFT rows teaching a judge which of two answers is right (sum, a check of each, A/B/neither)
    arith-steps*     multi-step problems solved one operation per line, with step labels
                     (process supervision; see builtin_steps.py)

Splits: "train" and "test" never share a question. Wrong answers in rankings are
ordered by distance from the truth: a near miss, the other operation (a misread
question) and a far miss, the way real rankings of real answers look.

The SFT demonstrations come from a careless writer, the way real demonstrations carry
their writers' habits: in two of three "A box holds ... takes out ..." problems it adds
instead of subtracting. SFT imitates that habit. Everything else here is right: held-out
answers, rankings, pairs, feedback and judge data, so each post-training stage has a signal that
can correct what SFT copied, and the quickstart shows whether it does.
"""

from __future__ import annotations

import random
from functools import cache

from llmpost.data import builtin_steps
from llmpost.errors import DataError

# 1000 test problems: one exact-match rate then has a 95% interval of about +-3 points, and a paired
# change between two models on the same problems resolves a few points (200 gave +-6).
SIZES = {"train": 3000, "test": 1000}
SEEDS = {"train": 1234, "test": 98765}
MAX_OPERAND = 12

NAMES = ["Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Ivy", "Jo", "Kim", "Leo", "Max", "Ned", "Sam", "Tom", "Zoe"]
ITEMS = ["apples", "books", "coins", "pens", "shells", "cards", "eggs", "stamps", "cups", "rocks"]
ADD = [
    "{n} has {a} {i} and gets {b} more. How many {i} does {n} have?",
    "{n} had {a} {i}. A friend gave {n} {b} {i}. How many {i} now?",
    "There are {a} {i} in a box and {b} more are put in. How many {i} are in the box?",
]
SUB = [
    "{n} has {a} {i} and gives away {b}. How many {i} are left?",
    "{n} had {a} {i} and lost {b} of them. How many {i} does {n} have now?",
    "A box holds {a} {i}. {n} takes out {b}. How many {i} remain?",
]
# The careless writer of the SFT demonstrations adds in this template, this often.
CARELESS_TEMPLATE = SUB[2]
CARELESS_RATE = 2 / 3

JUDGE_TEMPLATE = (
    "Question: {question}\nAnswer A: {a}\nAnswer B: {b}\nWhich answer is correct? Work it out, then reply A, B or neither."
)


def load_builtin(name: str, split: str = "train") -> list[dict]:
    """Rows of built-in dataset `name` ("arith" is an alias of "arith-sft") for `split`."""
    makers = {
        "arith": sft_rows,
        "arith-sft": sft_rows,
        "arith-prompts": prompt_rows,
        "arith-rankings": ranking_rows,
        "arith-pairs": pair_rows,
        "arith-feedback": feedback_rows,
        "arith-judge": judge_rows,
        **builtin_steps.MAKERS,
    }
    if name not in makers:
        raise DataError(f"unknown built-in dataset builtin:{name}",
                        hint="available: " + ", ".join(f"builtin:{n}" for n in makers))
    if split not in SIZES:
        raise DataError(f"built-in datasets have no split {split!r}", hint="use :train or :test")
    return [dict(r) for r in makers[name](split)]


def format_answer(a: int, op: str, b: int, result: int) -> str:
    """The worked answer the tiny model learns: the equation, then a GSM8K-style final line."""
    return f"{a}{op}{b}={result}\n#### {result}"


@cache
def problems(split: str) -> tuple[dict, ...]:
    """The split's problems: question text, operands, operator and true result."""
    rng = random.Random(SEEDS[split])
    other = set() if split == "train" else {p["question"] for p in problems("train")}
    seen: set[str] = set()
    out = []
    while len(out) < SIZES[split]:
        op = rng.choice("+-")
        a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
        if op == "-" and b > a:
            a, b = b, a
        template = rng.choice(ADD if op == "+" else SUB)
        question = template.format(n=rng.choice(NAMES), i=rng.choice(ITEMS), a=a, b=b)
        if question in seen or question in other:
            continue
        seen.add(question)
        result = a + b if op == "+" else a - b
        out.append({"question": question, "a": a, "b": b, "op": op, "result": result,
                    "careless": template == CARELESS_TEMPLATE})
    return tuple(out)


def wrong_answers(p: dict, rng: random.Random) -> list[tuple[int, str]]:
    """Three wrong (result, answer) pairs, nearest first: a near miss, the other operation, a far miss.

    The other operation is the careless writer's mistake (and any reader's who misreads the
    question): right arithmetic, wrong sum. Where it gives the truth (b = 0) or a negative
    number, a middling miss stands in.
    """
    flipped = "-" if p["op"] == "+" else "+"
    result = p["a"] + p["b"] if flipped == "+" else p["a"] - p["b"]
    if 0 <= result != p["result"]:
        other = (result, format_answer(p["a"], flipped, p["b"], result))
    else:
        result = miss(p, rng, 3, 6, avoid=())
        other = (result, answer_for(p, result))
    near = miss(p, rng, 1, 2, avoid=(result,))
    far = miss(p, rng, 8, 15, avoid=(result, near))
    picks = [(near, answer_for(p, near)), other, (far, answer_for(p, far))]
    return sorted(picks, key=lambda pick: abs(pick[0] - p["result"]))


def miss(p: dict, rng: random.Random, lo: int, hi: int, avoid: tuple[int, ...]) -> int:
    """A wrong, non-negative result lo..hi away from the truth, not among `avoid`."""
    while True:
        guess = p["result"] + rng.choice([-1, 1]) * rng.randint(lo, hi)
        if guess >= 0 and guess != p["result"] and guess not in avoid:
            return guess


def answer_for(p: dict, result: int) -> str:
    return format_answer(p["a"], p["op"], p["b"], result)


def demonstration(p: dict, rng: random.Random) -> str:
    """The careless writer's answer: it adds in CARELESS_TEMPLATE problems, CARELESS_RATE of the time."""
    if p["careless"] and rng.random() < CARELESS_RATE:
        return format_answer(p["a"], "+", p["b"], p["a"] + p["b"])
    return answer_for(p, p["result"])


def sft_rows(split: str) -> list[dict]:
    """Demonstrations: the careless writer's for "train", the truth for held-out "test"."""
    rng = random.Random(SEEDS[split] + 4)
    return [{"messages": [{"role": "user", "content": p["question"]},
                          {"role": "assistant",
                           "content": demonstration(p, rng) if split == "train" else answer_for(p, p["result"])}]}
            for p in problems(split)]


def prompt_rows(split: str) -> list[dict]:
    return [{"prompt": p["question"], "answer": str(p["result"])} for p in problems(split)]


def ranking_rows(split: str) -> list[dict]:
    rng = random.Random(SEEDS[split] + 1)
    rows = []
    for p in problems(split):
        wrong = [answer for _, answer in wrong_answers(p, rng)]
        rows.append({"prompt": p["question"], "responses": [answer_for(p, p["result"]), *wrong],
                     "answer": str(p["result"])})
    return rows


def pair_rows(split: str) -> list[dict]:
    rng = random.Random(SEEDS[split] + 2)
    rows = []
    for p in problems(split):
        _, wrong = rng.choice(wrong_answers(p, rng))
        rows.append({"prompt": p["question"], "chosen": answer_for(p, p["result"]),
                     "rejected": wrong, "answer": str(p["result"])})
    return rows


def feedback_rows(split: str) -> list[dict]:
    """Unpaired thumbs up / down: each problem once, with the right answer (label true) or, about as
    often, a wrong one drawn as `pair_rows` draws its rejected answer (label false)."""
    rng = random.Random(SEEDS[split] + 5)
    rows = []
    for p in problems(split):
        right = rng.random() < 0.5
        completion = answer_for(p, p["result"]) if right else rng.choice(wrong_answers(p, rng))[1]
        rows.append({"prompt": p["question"], "completion": completion, "label": right, "answer": str(p["result"])})
    return rows


def judge_rows(split: str) -> list[dict]:
    """Judge training data: each problem three times, as which of two answers is correct.

    The right answer meets a wrong one in both orders, and two wrong answers meet once
    (verdict "neither"). The judge works the sum out, checks each answer against it by
    subtraction, then names a side:

        12+9=21
        A 20-21=-1 no
        B 21-21=0 yes
        B

    LLM judges are asked to reason before their verdict for the same reason. A tiny judge
    taught only "sum, then letter" computed the sum right and still named one side whatever
    it read: finding which answer holds that number, across the prompt, in one token, was
    beyond it. Checked line by line, each step is a copy, a subtraction or a zero test.
    The subtraction is there because the tiny model sees numbers by their size: asked for
    "21 yes/no" against the sum directly, it said "no" to right answers and "yes" to ones
    1 or 2 off.

    The pairs with no right answer are there because the sum is always in the prompt
    otherwise: a judge can write its work line by copying either answer's number, and is
    right half the time. The quickstart's 500-step judges did that (of their wrong work
    lines, 89% held one of the two answers' numbers) and agreed with the truth on 0.14 of
    the SFT model's sampled pairs on seed 1; trained on these rows, on 0.63 (one thread) and
    0.46 (two). Both orders of each pair keep the verdict from following the position: with
    them alone, 0.31. The judge's own arithmetic is then what limits it (README, quickstart).
    """
    rng = random.Random(SEEDS[split] + 3)
    rows = []
    for p in problems(split):
        right = (p["result"], answer_for(p, p["result"]))
        wrong, other_wrong = rng.sample(wrong_answers(p, rng), 2)
        both_wrong = (wrong, other_wrong) if rng.random() < 0.5 else (other_wrong, wrong)
        rows += [judge_row(p, right, wrong), judge_row(p, wrong, right), judge_row(p, *both_wrong)]
    return rows


def judge_row(p: dict, a: tuple[int, str], b: tuple[int, str]) -> dict:
    """One judge SFT row: problem `p` with (result, answer) `a` shown first and `b` second."""
    checks = [f"{side} {r}-{p['result']}={r - p['result']} {'yes' if r == p['result'] else 'no'}"
              for side, r in (("A", a[0]), ("B", b[0]))]
    verdict = "A" if a[0] == p["result"] else "B" if b[0] == p["result"] else "neither"
    reply = "\n".join([f"{p['a']}{p['op']}{p['b']}={p['result']}", *checks, verdict])
    prompt = JUDGE_TEMPLATE.format(question=p["question"], a=a[1], b=b[1])
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]}
