"""A figure over several seeds of the same run: its mean, and a 95% interval that counts both kinds of noise.

One seed's paired interval (`stats.bootstrap_interval`) says how far a stage's change could
move on other held-out items, for that one training run. Training again with another seed
moves it too: the seed picks the data order, the initialisation and the samples. The mean
over seeds needs an interval that holds both.

`seeds_interval` is a two-way bootstrap: each resample draws the seeds with replacement
and, independently, the held-out items with replacement, and takes the mean over the drawn
seeds of each seed's mean over the drawn items. The items are drawn once per resample and
shared by every seed, because every seed answers the same held-out items: an item that is
hard for one seed's model is hard for the others, and drawing it again for each seed
separately (a nested bootstrap) would average that away and give too narrow an interval.

Why not pool all (seed, item) pairs into one paired bootstrap: that treats the seeds as
more items. Three seeds that gain +0.4, 0 and +0.2 would give an interval around +0.2 as
narrow as one seed with three times the items, while the next seed might well gain 0.

`item_values` reads what one seed's artifact contributes from its eval_items.jsonl.

With one seed the interval is the paired bootstrap over items. With few seeds the seed
part is coarse (3 seeds have 10 distinct draws): read it as a floor on the uncertainty,
and add seeds rather than trust its third decimal.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from llmpost.evaluation.report import read_items
from llmpost.evaluation.stats import CONFIDENCE, RESAMPLES, SEED


def common_items(values_by_seed: Sequence[dict[str, float]]) -> list[str]:
    """The item ids every seed has a value for, in the first seed's order."""
    if not values_by_seed:
        return []
    return [i for i in values_by_seed[0] if all(i in values for values in values_by_seed[1:])]


def seeds_mean(values_by_seed: Sequence[dict[str, float]]) -> float | None:
    """The mean over seeds of each seed's mean over the items all seeds share; None when they share none."""
    ids = common_items(values_by_seed)
    if not ids:
        return None
    return sum(sum(values[i] for i in ids) / len(ids) for values in values_by_seed) / len(values_by_seed)


def seeds_interval(values_by_seed: Sequence[dict[str, float]], resamples: int = RESAMPLES, seed: int = SEED,
                   confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile interval of `seeds_mean` from a two-way bootstrap over seeds and items (module docstring).

    `values_by_seed`: one {item id: value} per seed (e.g. each item's after - before). Only
    the items every seed has are used; None when there are none.
    """
    ids = common_items(values_by_seed)
    if not ids:
        return None
    table = [[values[i] for i in ids] for values in values_by_seed]  # seeds x items
    n_seeds, n_items = len(table), len(ids)
    rng = random.Random(seed)
    means = []
    for _ in range(resamples):
        seeds = rng.choices(range(n_seeds), k=n_seeds)
        items = rng.choices(range(n_items), k=n_items)
        totals = [sum(map(row.__getitem__, items)) for row in table]  # each seed's total on the drawn items
        means.append(sum(totals[s] for s in seeds) / (n_seeds * n_items))
    means.sort()
    cut = round((1 - confidence) / 2 * resamples)  # resampled means left out in each tail
    return means[cut], means[resamples - 1 - cut]


def item_values(artifact_dir) -> dict[str, dict[str, float]]:
    """What one seed's artifact gives `seeds_interval`, per item id, from its eval_items.jsonl.

    "after" and "before": 1.0 for a right answer, 0.0 for a wrong one; "change": after - before,
    the phases paired by item index as eval.json's own change is. Empty when it has no items.
    """
    after, before = read_items(artifact_dir, "after") or [], read_items(artifact_dir, "before") or []
    earlier = {item.index: item for item in before if item.correct is not None}
    checked = [item for item in after if item.correct is not None]
    return {
        "after": {item.id: float(item.correct) for item in checked},
        "before": {item.id: float(item.correct) for item in earlier.values()},
        "change": {item.id: float(item.correct) - float(earlier[item.index].correct)
                   for item in checked if item.index in earlier},
    }
