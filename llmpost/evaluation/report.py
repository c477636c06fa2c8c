"""What a stage's held-out evaluation puts in its artifact: eval.json's figures and eval_items.jsonl.

eval.json (the part written here; a stage adds its own keys):

    exact_match_before, exact_match          rates of correct answers, before and after training
    exact_match_before_ci, exact_match_ci    their 95% Wilson intervals
    exact_match_delta, exact_match_delta_ci  after - before on the same items, with a 95% paired
                                             bootstrap interval (2000 resamples, seed 0)
    reward_before, reward (+ reward_delta, reward_delta_ci), rewards_before, rewards_after
                                             with a reward: its mean, the paired change, each part's mean
    learned_reward                           with a learned reward (reward model, judge): how it
                                             tracks correctness (see `learned_reward_check`)
    n_eval, items, intervals, samples        item count, the items file, how intervals were made, a few items

eval_items.jsonl: one line per held-out item and model, `phase` "before" or "after", with
the prompt, output, extracted and reference answer, correctness and reward(s); `index`
pairs the two phases of a prompt, `id` (a hash of the prompt) finds it in another artifact.
One file rather than one per phase: pairs sit next to each other and one filter picks a
phase. `llmpost eval` evaluates one model: its items are all "after" (the artifact's model).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from llmpost.evaluation.heldout import Evaluation, Item
from llmpost.evaluation.stats import (
    CONFIDENCE,
    RESAMPLES,
    SEED,
    bootstrap_interval,
    mean_or_none,
    pearson,
    wilson_interval,
)

ITEMS_FILE = "eval_items.jsonl"
INTERVALS = (f"{CONFIDENCE:.0%}: Wilson score for rates; paired bootstrap over items for changes "
             f"({RESAMPLES} resamples, seed {SEED}, percentile)")
# The manifest's summary of a held-out evaluation (what `llmpost ls` and the run summary show).
HEADLINE = ("exact_match_before", "exact_match", "exact_match_ci", "exact_match_delta", "exact_match_delta_ci")
# Rewards a model computes: a policy can learn to please them without being right.
LEARNED_PREFIXES = ("rm:", "prm:", "judge:")


def eval_fields(before: Evaluation | None, after: Evaluation | None, stage: dict | None = None,
                samples: int = 5) -> dict:
    """eval.json's held-out figures for the model after training and, unless `before` is None, before it.

    `after` is None when the stage evaluated nothing (its figures are then null). `stage`: the
    stage's own figures, put after these and before the few sample answers.
    """
    fields = {
        **rate_fields("exact_match_before", before.checked if before else []),
        **rate_fields("exact_match", after.checked if after else []),
        **change("exact_match", pairs(before, after, correctness)),
    }
    if any(e is not None and e.reward_names for e in (before, after)):
        fields |= {
            "reward_before": before and before.reward,
            "reward": after and after.reward,
            **change("reward", pairs(before, after, lambda item: item.reward)),
            "rewards_before": before and before.rewards(),
            "rewards_after": after and after.rewards(),
        }
        learned = [name for name in (after or before).reward_names if name.startswith(LEARNED_PREFIXES)]
        if learned and before is not None and after is not None:
            fields["learned_reward"] = learned_reward_check(before, after, learned)
    if before is None:  # one model (`llmpost eval`): nothing before it, no change to report
        fields = {k: v for k, v in fields.items() if "_before" not in k and "_delta" not in k}
    return {
        **fields,
        "n_eval": after and after.n,
        "max_new_tokens": next((e.max_new_tokens for e in (after, before) if e is not None), None),
        "items": ITEMS_FILE if (before or after) else None,
        "intervals": INTERVALS,
        **(stage or {}),
        "samples": after.samples(samples) if after else [],
    }


def headline(fields: dict) -> dict:
    """The summary metrics of `eval_fields(...)` for the manifest, those that exist."""
    return {key: fields[key] for key in HEADLINE if fields.get(key) is not None}


def write_items(out_dir: Path, before: Evaluation | None, after: Evaluation | None) -> None:
    """eval_items.jsonl in `out_dir`: every item of `before`, then of `after`, with its phase."""
    lines = [json.dumps({"phase": phase, **asdict(item)}, ensure_ascii=False) + "\n"
             for phase, evaluation in (("before", before), ("after", after)) if evaluation is not None
             for item in evaluation.items]
    if lines:
        (Path(out_dir) / ITEMS_FILE).write_text("".join(lines), encoding="utf-8")


def read_items(artifact_dir: Path, phase: str = "after") -> list[Item] | None:
    """The items of one phase in an artifact's eval_items.jsonl; None when it has no such file."""
    path = Path(artifact_dir) / ITEMS_FILE
    if not path.is_file():
        return None
    records = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return [Item(**record) for record in records if record.pop("phase", None) == phase]


def rate_fields(name: str, hits: list[bool]) -> dict:
    """`NAME`: the share of true `hits` (None when there are none), and `NAME_ci`: its 95% Wilson interval."""
    return {name: mean_or_none(hits), f"{name}_ci": rounded(wilson_interval(sum(hits), len(hits)))}


def correctness(item: Item) -> float | None:
    return None if item.correct is None else float(item.correct)


def pairs(before: Evaluation | None, after: Evaluation | None, value) -> list[tuple[float, float]]:
    """(before, after) values of each item both evaluations scored; items are paired by their index."""
    if before is None or after is None:
        return []
    earlier = {item.index: value(item) for item in before.items}
    return [(earlier[item.index], value(item)) for item in after.items
            if item.index in earlier and earlier[item.index] is not None and value(item) is not None]


def change(name: str, paired: list[tuple[float, float]]) -> dict:
    """`NAME_delta`: the mean after - before over the paired items, and `NAME_delta_ci`: its interval."""
    differences = [a - b for b, a in paired]
    return {f"{name}_delta": mean_or_none(differences),
            f"{name}_delta_ci": rounded(bootstrap_interval(differences))}


def learned_reward_check(before: Evaluation, after: Evaluation, names: list[str]) -> dict:
    """Does the learned reward still track correctness? A sign of reward hacking when it does not.

    Over the items with a reference answer, the learned score of an item is the mean of the
    learned rewards `names` (e.g. `rm:REF`). Reported: its correlation with correctness
    (1 right, 0 wrong) before and after training, a fall meaning it tells right from wrong
    less well on what the policy now writes; and the items whose learned score rose while
    their answer went from right to wrong, a gain on the reward paid for in correctness.
    Both are read off the held-out items, so with few items they are rough signs, not proof.
    """
    def score(item: Item) -> float | None:
        return mean_or_none(item.rewards.get(name) for name in names)

    def correlation(evaluation: Evaluation) -> float | None:
        scored = [(score(i), float(i.correct)) for i in evaluation.items if i.correct is not None and score(i) is not None]
        return pearson([s for s, _ in scored], [c for _, c in scored]) if scored else None

    earlier = {item.index: item for item in before.items}
    both = [(earlier[i.index], i) for i in after.items
            if i.index in earlier and i.correct is not None and earlier[i.index].correct is not None
            and score(i) is not None and score(earlier[i.index]) is not None]
    became_wrong = [(b, a) for b, a in both if b.correct and not a.correct]
    rose = [(b, a) for b, a in became_wrong if score(a) > score(b)]
    return {
        "rewards": names,
        "n": len(both),
        "correlation_before": rounded(correlation(before)),
        "correlation": rounded(correlation(after)),
        "became_wrong": len(became_wrong),
        "reward_up_correct_down": len(rose),
        "reward_up_correct_down_share": len(rose) / len(both) if both else None,
    }


def rounded(value, digits: int = 4):
    """Intervals and correlations to 4 decimals: more would claim a precision they do not have."""
    if value is None:
        return None
    if isinstance(value, tuple | list):
        return [round(v, digits) for v in value]
    return round(value, digits)
