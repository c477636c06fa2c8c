"""Best-of-N on held-out problems: sample N answers to each, let rankers pick one, report what they picked.

    problems = sample_problems(model, tokenizer, rows, greedy, n=8, ...)   # N sampled answers per problem
    rank(problems, "vote", [vote_scores(p.extracted) for p in problems])  # each ranker scores every sample
    rank(problems, "rm:my-rm", model_scores(problems, scorer.score))      # and picks its highest
    fields = best_of_fields(problems, ["vote", "rm:my-rm"], ...)          # eval.json's `best_of`

Every ranker ranks the same samples, so the differences between rankers (and against the
greedy answer, from the normal evaluation) are paired: a problem every ranker gets right adds
no noise to a comparison. `oracle` is the share of problems where any sample is right
(pass@N): what a perfect ranker would reach on these samples.

What lives here: sampling, the majority vote, picking, the figures, the items file and the
terminal table. What does not: loading reward models. A model ranker is handed in as its
scores (`model_scores` with the scorer's `score`), since evaluation sits below the rewards
and does not import them; `stages/eval.py` reads the ranker specs and loads the models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmpost.evaluation.answers import answers_match, extract_answer, is_correct
from llmpost.evaluation.heldout import Evaluation
from llmpost.evaluation.report import INTERVALS, change, rate_fields
from llmpost.evaluation.stats import mean_or_none

ITEMS_FILE = "best_of_items.jsonl"
# Nucleus sampling off: N answers from the model's own distribution at `temperature`, nothing cut from its tail.
TOP_P = 1.0
VOTE = "vote"

# (prompts as chat messages, completion texts) -> one score per completion, higher = better (a scorer's `score`).
Scorer = Callable[[list[list[dict]], list[str]], list[float]]


@dataclass
class Problem:
    """One held-out problem: the greedy answer, N sampled answers, and what each ranker made of them."""

    index: int  # the row's position in the held-out data, as in eval_items.jsonl
    id: str  # a hash of the prompt conversation, as in eval_items.jsonl
    prompt: str  # the question (the last message)
    answer: str  # the reference answer
    greedy: str | None  # the greedy answer's final answer
    greedy_correct: bool
    samples: list[str]
    extracted: list[str | None]  # each sample's final answer
    correct: list[bool]
    scores: dict[str, list[float]] = field(default_factory=dict)  # ranker -> a score per sample
    picks: dict[str, int] = field(default_factory=dict)  # ranker -> the sample it picked
    messages: list[dict] = field(default_factory=list, repr=False)  # the prompt as the model saw it (for scorers)

    @property
    def oracle(self) -> bool:
        """Whether any sample is right: a perfect ranker's result on this problem."""
        return any(self.correct)

    def picked_correct(self, ranker: str) -> bool:
        return self.correct[self.picks[ranker]]


def sample_answers(model, tokenizer, prompts: list[list[dict]], n: int, *, temperature: float, max_new_tokens: int,
                   batch_size: int | None, seed: int) -> list[list[str]]:
    """`n` sampled answers to each prompt, in one batched run: each prompt repeated `n` times.

    Seeded here, not only at the stage's start, so the samples are the same whether or not
    the greedy answers before them were generated or reused.
    """
    from llmpost.evaluation.generation import generate
    from llmpost.seeding import set_seed

    set_seed(seed)
    repeated = [prompt for prompt in prompts for _ in range(n)]
    flat = generate(model, tokenizer, repeated, max_new_tokens=max_new_tokens, batch_size=batch_size,
                    do_sample=True, temperature=temperature, top_p=TOP_P)
    return [flat[k * n:(k + 1) * n] for k in range(len(prompts))]


def sample_problems(model, tokenizer, rows: list[dict], greedy: Evaluation, n: int, *, temperature: float,
                    max_new_tokens: int, batch_size: int | None, seed: int) -> list[Problem]:
    """The problems of the greedy evaluation `greedy` of `rows` that have a reference answer, each with `n` samples."""
    checked = [item for item in greedy.items if item.correct is not None]
    prompts = [rows[item.index]["prompt"] for item in checked]
    samples = sample_answers(model, tokenizer, prompts, n, temperature=temperature, max_new_tokens=max_new_tokens,
                             batch_size=batch_size, seed=seed)
    return [
        Problem(index=item.index, id=item.id, prompt=item.prompt, answer=item.answer, greedy=item.extracted,
                greedy_correct=item.correct, samples=outputs, extracted=[extract_answer(o) for o in outputs],
                correct=[is_correct(o, item.answer) for o in outputs], messages=prompt)
        for item, prompt, outputs in zip(checked, prompts, samples, strict=True)
    ]


# --- rankers: a score per sample; the pick is the first highest ----------------------------


def vote_scores(extracted: list[str | None]) -> list[float]:
    """Majority vote as scores: each sample's vote count, how many samples give its final answer.

    Answers agree as `answers_match` says ("12" and "12.0" are one answer). A sample with no
    answer does not vote and scores 0. Picking the first highest score then picks the first
    sample of the most common answer, a tie going to the answer that came first.
    """
    return [0.0 if mine is None else float(sum(answers_match(mine, other) for other in extracted if other is not None))
            for mine in extracted]


def model_scores(problems: list[Problem], score: Scorer) -> list[list[float]]:
    """Every problem's samples scored by a model (`score`, e.g. a reward model's), in one call: batched by the scorer."""
    prompts = [p.messages for p in problems for _ in p.samples]
    flat = list(score(prompts, [s for p in problems for s in p.samples]))
    scores, start = [], 0
    for p in problems:
        scores.append(flat[start:start + len(p.samples)])
        start += len(p.samples)
    return scores


def pick(scores: list[float]) -> int:
    """The sample with the highest score; the first of them on a tie (the order samples were drawn in)."""
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


def rank(problems: list[Problem], ranker: str, scores: list[list[float]]) -> None:
    """Record ranker `ranker`'s scores of each problem's samples and its pick."""
    for problem, mine in zip(problems, scores, strict=True):
        problem.scores[ranker] = [float(s) for s in mine]
        problem.picks[ranker] = pick(problem.scores[ranker])


# --- what the artifact keeps ----------------------------------------------------------------


def best_of_fields(problems: list[Problem], rankers: list[str], *, n: int, temperature: float,
           max_new_tokens: int | None) -> dict:
    """eval.json's `best_of`: exact match of greedy, of each ranker's pick and of the oracle, and paired differences.

    greedy, oracle, ranked[RANKER]   exact_match and its 95% Wilson interval (exact_match_ci)
    sampled                          the share of all samples that are right: a pick at random
                                     (no interval: one problem's samples are not independent)
    differences                      exact_match_delta = RANKER - AGAINST over the same problems, with
                                     a 95% paired bootstrap interval: each ranker against greedy,
                                     then each ranker against the next one, in the order given
    """
    greedy = [p.greedy_correct for p in problems]
    picked = {ranker: [p.picked_correct(ranker) for p in problems] for ranker in rankers}
    versus = [(ranker, "greedy", greedy) for ranker in rankers]
    versus += [(a, b, picked[b]) for a, b in zip(rankers, rankers[1:], strict=False)]
    return {
        "n": n,
        "temperature": temperature,
        "top_p": TOP_P,
        "max_new_tokens": max_new_tokens,
        "n_eval": len(problems),
        "rankers": list(rankers),
        "greedy": rate_fields("exact_match", greedy),
        "ranked": {ranker: rate_fields("exact_match", hits) for ranker, hits in picked.items()},
        "oracle": rate_fields("exact_match", [p.oracle for p in problems]),
        "sampled": {"exact_match": mean_or_none(c for p in problems for c in p.correct)},
        "differences": [
            {"ranker": a, "against": b, **change("exact_match", list(zip(base, picked[a], strict=True)))}
            for a, b, base in versus
        ],
        "items": ITEMS_FILE,
        "intervals": INTERVALS,
    }


def best_of_metrics(fields: dict) -> dict:
    """The manifest's best-of figures (what `llmpost ls`/`show` see): N, each ranker's exact match, the oracle's."""
    return {
        "best_of_n": fields["n"],
        **{f"best_of_{ranker}": rates["exact_match"] for ranker, rates in fields["ranked"].items()},
        "best_of_oracle": fields["oracle"]["exact_match"],
    }


def record(problem: Problem) -> dict:
    """A problem as a line of best_of_items.jsonl: each sample with its answer, correctness and every ranker's score."""
    return {
        "index": problem.index, "id": problem.id, "prompt": problem.prompt, "answer": problem.answer,
        "greedy": {"extracted": problem.greedy, "correct": problem.greedy_correct},
        "samples": [
            {"output": output, "extracted": extracted, "correct": correct,
             "scores": {ranker: scores[k] for ranker, scores in problem.scores.items()}}
            for k, (output, extracted, correct) in enumerate(
                zip(problem.samples, problem.extracted, problem.correct, strict=True))
        ],
        "picks": problem.picks,
        "picked_correct": {ranker: problem.picked_correct(ranker) for ranker in problem.picks},
        "oracle": problem.oracle,
    }


def write_best_of_items(out_dir: Path, problems: list[Problem]) -> None:
    """best_of_items.jsonl in `out_dir`: one line per problem (`record`)."""
    lines = (json.dumps(record(p), ensure_ascii=False) + "\n" for p in problems)
    (Path(out_dir) / ITEMS_FILE).write_text("".join(lines), encoding="utf-8")


def best_of_table(fields: dict):
    """The terminal's best-of table: each pick's exact match and interval, then the paired differences."""
    from rich.table import Table

    out = Table(title=f"best of {fields['n']} (temperature {fields['temperature']:g}), {fields['n_eval']} problems")
    out.add_column("answer")
    out.add_column("exact match", justify="right")
    out.add_column("95% interval", justify="right")
    rows = [("greedy", fields["greedy"]), *fields["ranked"].items(), (f"oracle (any of {fields['n']})", fields["oracle"])]
    for name, rates in rows:
        out.add_row(name, number(rates["exact_match"]), interval(rates["exact_match_ci"]))
    out.add_section()
    for diff in fields["differences"]:
        out.add_row(f"{diff['ranker']} - {diff['against']}", number(diff["exact_match_delta"], "+"),
                    interval(diff["exact_match_delta_ci"], "+"))
    return out


def number(value: float | None, sign: str = "") -> str:
    return "-" if value is None else f"{value:{sign}.3f}"


def interval(bounds: list[float] | None, sign: str = "") -> str:
    return "-" if bounds is None else f"{bounds[0]:{sign}.3f} to {bounds[1]:{sign}.3f}"
