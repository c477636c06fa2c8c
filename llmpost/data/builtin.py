"""The built-in verifiable task: short arithmetic word problems with integer answers.

Generated deterministically (fixed seeds, fixed sizes), offline, in every shape a
stage needs. `load_builtin(name, split)` returns plain rows:

    arith-sft        {"messages": [user question, assistant "7+5=12\\n#### 12"]}
    arith-prompts    {"prompt": question, "answer": "12"}
    arith-rankings   {"prompt", "responses": [4 answers, best -> worst]}
    arith-pairs      {"prompt", "chosen", "rejected"}
    arith-judge      SFT rows teaching a judge which of two answers is right (sum, a check of each, A/B)

Splits: "train" and "test" never share a question. Wrong answers in rankings are
ordered by distance from the truth, spread from near misses to far misses, the
way real rankings of real answers look.
"""

from __future__ import annotations

import random
from functools import cache

from llmpost.errors import DataError

SIZES = {"train": 3000, "test": 200}
SEEDS = {"train": 1234, "test": 98765}
MAX_OPERAND = 20

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

JUDGE_TEMPLATE = (
    "Question: {question}\nAnswer A: {a}\nAnswer B: {b}\nWhich answer is correct? Work it out, then reply A or B."
)


def load_builtin(name: str, split: str = "train") -> list[dict]:
    """Rows of built-in dataset `name` ("arith" is an alias of "arith-sft") for `split`."""
    makers = {
        "arith": sft_rows,
        "arith-sft": sft_rows,
        "arith-prompts": prompt_rows,
        "arith-rankings": ranking_rows,
        "arith-pairs": pair_rows,
        "arith-judge": judge_rows,
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
        out.append({"question": question, "a": a, "b": b, "op": op, "result": result})
    return tuple(out)


def wrong_results(p: dict, rng: random.Random) -> list[int]:
    """Three wrong results, nearest first: a near miss, a middling one, a far miss."""
    picks = []
    for lo, hi in ((1, 2), (3, 6), (8, 15)):
        while True:
            guess = p["result"] + rng.choice([-1, 1]) * rng.randint(lo, hi)
            if guess >= 0 and guess != p["result"] and guess not in picks:
                picks.append(guess)
                break
    return picks


def answer_for(p: dict, result: int) -> str:
    return format_answer(p["a"], p["op"], p["b"], result)


def sft_rows(split: str) -> list[dict]:
    return [{"messages": [{"role": "user", "content": p["question"]},
                          {"role": "assistant", "content": answer_for(p, p["result"])}]}
            for p in problems(split)]


def prompt_rows(split: str) -> list[dict]:
    return [{"prompt": p["question"], "answer": str(p["result"])} for p in problems(split)]


def ranking_rows(split: str) -> list[dict]:
    rng = random.Random(SEEDS[split] + 1)
    rows = []
    for p in problems(split):
        results = [p["result"], *wrong_results(p, rng)]
        rows.append({"prompt": p["question"], "responses": [answer_for(p, r) for r in results],
                     "answer": str(p["result"])})
    return rows


def pair_rows(split: str) -> list[dict]:
    rng = random.Random(SEEDS[split] + 2)
    rows = []
    for p in problems(split):
        wrong = rng.choice(wrong_results(p, rng))
        rows.append({"prompt": p["question"], "chosen": answer_for(p, p["result"]),
                     "rejected": answer_for(p, wrong), "answer": str(p["result"])})
    return rows


def judge_rows(split: str) -> list[dict]:
    """Judge training data: which of two answers is correct, the correct one on a random side.

    The judge works the sum out, checks each answer against it, then names a side:

        18+17=35
        A 36 no
        B 35 yes
        B

    LLM judges are asked to reason before their verdict for the same reason. A tiny judge
    taught only "sum, then letter" computed the sum right and still named one side whatever
    it read: finding which answer holds that number, across the prompt, in one token, was
    beyond it. Checked line by line, each step is a copy or a comparison of adjacent numbers.
    """
    rng = random.Random(SEEDS[split] + 3)
    rows = []
    for p in problems(split):
        wrong = rng.choice(wrong_results(p, rng))
        correct_first = rng.random() < 0.5
        results = (p["result"], wrong) if correct_first else (wrong, p["result"])
        a, b = (answer_for(p, r) for r in results)
        prompt = JUDGE_TEMPLATE.format(question=p["question"], a=a, b=b)
        checks = [f"{side} {r} {'yes' if r == p['result'] else 'no'}" for side, r in zip("AB", results, strict=True)]
        work = f"{p['a']}{p['op']}{p['b']}={p['result']}"
        reply = "\n".join([work, *checks, "A" if correct_first else "B"])
        rows.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]})
    return rows
