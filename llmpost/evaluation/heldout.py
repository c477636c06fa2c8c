"""The held-out evaluation every stage that generates runs, before and after training.

`evaluate` answers each held-out prompt greedily, checks the answer against the
reference and, when the stage has a reward, scores it; the result keeps every item, so
the before and after answers to the same prompt can be compared one by one. The figures
built from the items (rates, intervals, before/after comparisons) are in `report.py`.

The reward is passed in as a callable, `reward(prompts, completions, rows) -> (totals,
{name: values})` (what `rewards.registry.CombinedReward` is): evaluation sits below the
rewards and does not import them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from llmpost.evaluation.answers import extract_answer, is_correct
from llmpost.evaluation.generation import generate
from llmpost.evaluation.stats import mean_or_none

# (prompts as chat messages, completions, the prompt rows) -> (total reward per completion, each part by name):
# what `rewards.registry.CombinedReward` is; the PPO trainer takes the same.
RewardWithParts = Callable[[list[list[dict]], list[str], list[dict]], tuple[list[float], dict[str, list[float]]]]


@dataclass
class Item:
    """One held-out prompt and what the model made of it."""

    index: int  # position in the held-out rows: the same index before and after is the same prompt
    id: str  # a hash of the prompt conversation: finds the same question in another artifact's items
    prompt: str  # the last message (the question itself)
    output: str
    extracted: str | None  # the final answer read from the output
    answer: str | None  # the reference answer
    correct: bool | None  # None: the row has no reference answer to check against
    reward: float | None = None  # the stage's weighted reward; None without a reward or where none applies
    rewards: dict[str, float | None] = field(default_factory=dict)  # each reward's own value


@dataclass
class Evaluation:
    """The items of one held-out evaluation, and the summary figures read off them."""

    items: list[Item]
    max_new_tokens: int | None = None  # the generation budget the answers had

    @property
    def n(self) -> int:
        return len(self.items)

    @property
    def checked(self) -> list[bool]:
        """Correctness of each item that has a reference answer."""
        return [item.correct for item in self.items if item.correct is not None]

    @property
    def exact_match(self) -> float | None:
        """Share of items (with a reference answer) answered correctly; None when none has one."""
        return mean_or_none(self.checked)

    @property
    def reward(self) -> float | None:
        return mean_or_none(item.reward for item in self.items)

    @property
    def reward_names(self) -> list[str]:
        return list(self.items[0].rewards) if self.items else []

    def rewards(self) -> dict[str, float | None]:
        """Each reward's mean over the items it applies to."""
        return {name: mean_or_none(item.rewards[name] for item in self.items) for name in self.reward_names}

    def samples(self, count: int) -> list[dict]:
        """The first `count` items, as eval.json shows a few."""
        return [sample(item) for item in self.items[:count]]


def evaluate(model, tokenizer, rows: list[dict], *, max_new_tokens: int = 32, batch_size: int | None = None,
             reward: RewardWithParts | None = None, known_outputs: dict[str, str] | None = None) -> Evaluation:
    """Greedy answers to held-out `rows` ({"prompt": messages, "answer": str | None, ...}), each checked and scored.

    Without a reward, a row with no reference answer has nothing to be judged by and is not
    generated for; with one, every row is (the reward may read other columns).
    `known_outputs` ({prompt id: output}) are this very model's greedy answers from an earlier
    evaluation with the same `max_new_tokens`: those prompts are not generated again, only
    checked and scored.
    """
    kept = [(i, row) for i, row in enumerate(rows) if reward is not None or row.get("answer") is not None]
    if not kept:
        return Evaluation([], max_new_tokens)
    prompts = [row["prompt"] for _, row in kept]
    outputs = answers(model, tokenizer, prompts, known_outputs or {}, max_new_tokens=max_new_tokens,
                      batch_size=batch_size)
    if reward is not None:
        totals, parts = reward(prompts, outputs, [row for _, row in kept])
    else:
        totals, parts = [None] * len(kept), {}
    items = []
    for k, ((index, row), output) in enumerate(zip(kept, outputs, strict=True)):
        answer = row.get("answer")
        items.append(Item(
            index=index, id=prompt_id(row["prompt"]), prompt=row["prompt"][-1]["content"], output=output,
            extracted=extract_answer(output), answer=None if answer is None else str(answer),
            correct=None if answer is None else is_correct(output, answer),
            reward=number(totals[k]), rewards={name: number(values[k]) for name, values in parts.items()},
        ))
    return Evaluation(items, max_new_tokens)


def answers(model, tokenizer, prompts: list[list[dict]], known: dict[str, str], **generation) -> list[str]:
    """The greedy answer to each prompt: from `known` where it is there, else generated (in one batch run)."""
    ids = [prompt_id(p) for p in prompts]
    missing = [k for k, i in enumerate(ids) if i not in known]
    generated = generate(model, tokenizer, [prompts[k] for k in missing], **generation) if missing else []
    fresh = dict(zip(missing, generated, strict=True))
    return [fresh[k] if k in fresh else known[i] for k, i in enumerate(ids)]


def prompt_id(messages: list[dict]) -> str:
    """A short, stable id for a prompt conversation (its content, not its position)."""
    text = json.dumps([[m.get("role"), m.get("content")] for m in messages], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def number(value: float | None) -> float | None:
    """A reward value for JSON: NaN (the reward does not apply to this item) becomes None."""
    return None if value is None or math.isnan(value) else float(value)


def sample(item: Item) -> dict:
    record = asdict(item)
    del record["index"], record["id"]
    if not record["rewards"]:
        del record["rewards"], record["reward"]
    return record
