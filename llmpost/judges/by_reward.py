"""Pairs decided by a verifiable reward instead of a judge model (`llmpost judge --rank-by`).

Every response of a group is scored once by the rewards (summed with their weights,
as in grpo and ppo); a pair goes to the higher total and equal totals tie. The
outcomes have the judge's shape, so rankings, pairs and the report are made the
same way: `aggregate.copeland_scores` over these outcomes orders the responses by
their totals.
"""

from __future__ import annotations

import math

from llmpost.errors import DataError
from llmpost.judges.aggregate import Group
from llmpost.judges.compare import PairTask, PairVerdict


def reward_totals(groups: list[Group], reward, source: str) -> list[list[float]]:
    """Each group's responses' reward totals; a DataError where a reward does not apply (no answer to check)."""
    prompts, texts, rows, owners = [], [], [], []
    for g, group in enumerate(groups):
        for text in group.responses:
            prompts.append(group.prompt)
            texts.append(text)
            rows.append(group.row)
            owners.append(g)
    totals, _ = reward(prompts, texts, rows)
    unscored = [g for g, t in zip(owners, totals, strict=True) if math.isnan(t)]
    if unscored:
        raise DataError(f"rank_by scored no value for {len(unscored)} responses of {len(set(unscored))} prompts in "
                        f"{source} (first: prompt {unscored[0]}): the reward does not apply to them",
                        hint="exact_match and math need an `answer` column; give prompts that have one, "
                             "or rank with a judge (--judge)")
    out: list[list[float]] = [[] for _ in groups]
    for g, total in zip(owners, totals, strict=True):
        out[g].append(total)
    return out


def reward_pairs(tasks: list[PairTask], totals: list[list[float]]) -> list[PairVerdict]:
    """One outcome per task: the response with the higher total wins; equal totals (and identical texts) tie."""
    outcomes = []
    for t in tasks:
        if t.text_i == t.text_j:
            outcomes.append(PairVerdict(t.group, t.i, t.j, None, "identical"))
            continue
        first, second = totals[t.group][t.i], totals[t.group][t.j]
        if first == second:
            outcomes.append(PairVerdict(t.group, t.i, t.j, None, "tie"))
        else:
            outcomes.append(PairVerdict(t.group, t.i, t.j, t.i if first > second else t.j, "consistent"))
    return outcomes
