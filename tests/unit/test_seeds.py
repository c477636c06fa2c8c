"""Several seeds: the two-way interval over seeds and items (evaluation/seeds.py) on constructed figures,
and each seed's recipe (pipeline/seeds.py): its seed, its artifact names, its references."""

from __future__ import annotations

import random

import pytest

from llmpost.errors import ConfigError
from llmpost.evaluation.seeds import common_items, seeds_interval, seeds_mean
from llmpost.evaluation.stats import bootstrap_interval
from llmpost.pipeline.recipe import build_recipe
from llmpost.pipeline.seeds import parse_seeds, recipe_seed, seed_names, seeded_recipe

N = 200


def changes(share_up: float, share_down: float = 0.0, n: int = N, shift: int = 0) -> dict[str, float]:
    """A seed's per-item change: the first `share_up` of the items gained (+1), the next `share_down` lost (-1)."""
    up, down = round(share_up * n), round(share_down * n)
    values = [1.0] * up + [-1.0] * down + [0.0] * (n - up - down)
    values = values[shift:] + values[:shift]  # which items moved differs from seed to seed
    return {f"item{i}": v for i, v in enumerate(values)}


def pooled_interval(values_by_seed: list[dict[str, float]]) -> tuple[float, float]:
    """What pooling every (seed, item) pair into one paired bootstrap would say."""
    return bootstrap_interval([v for values in values_by_seed for v in values.values()])


def test_with_one_seed_it_is_the_paired_bootstrap_over_items():
    one = changes(0.15, 0.05)
    low, high = seeds_interval([one])
    reference = bootstrap_interval(list(one.values()))
    assert seeds_mean([one]) == pytest.approx(0.10)
    assert low == pytest.approx(reference[0], abs=0.015) and high == pytest.approx(reference[1], abs=0.015)


def test_seeds_that_agree_add_nothing_to_the_item_noise():
    same = changes(0.15, 0.05)
    low, high = seeds_interval([same, same, same])
    one_low, one_high = bootstrap_interval(list(same.values()))
    assert low == pytest.approx(one_low, abs=0.02) and high == pytest.approx(one_high, abs=0.02)


def test_seeds_that_disagree_widen_the_interval_where_pooling_would_not():
    # three training runs: +0.4, +0.0 and +0.2; another seed could well land near 0
    seeds = [changes(0.4), changes(0.0), changes(0.2, shift=50)]
    assert seeds_mean(seeds) == pytest.approx(0.2)
    low, high = seeds_interval(seeds)
    pooled_low, pooled_high = pooled_interval(seeds)
    assert pooled_low > 0.15, "pooling sees 600 items and is sure of +0.2"
    assert low < 0.1 and high > 0.3, (low, high)
    assert low < pooled_low and high > pooled_high


def test_the_interval_holds_its_mean_and_is_the_same_on_every_run():
    rng = random.Random(7)
    seeds = [{f"q{i}": float(rng.choice([-1, 0, 0, 1, 1])) for i in range(80)} for _ in range(3)]
    low, high = seeds_interval(seeds)
    assert low < seeds_mean(seeds) < high
    assert seeds_interval(seeds) == (low, high)


def test_only_items_every_seed_has_count():
    a = {"q1": 1.0, "q2": 0.0, "q3": 1.0}
    b = {"q3": 1.0, "q1": 0.0}
    assert common_items([a, b]) == ["q1", "q3"]
    assert seeds_mean([a, b]) == pytest.approx((1.0 + 0.5) / 2)
    assert seeds_interval([a, {"other": 1.0}]) is None and seeds_mean([]) is None


RECIPE = {
    "name": "demo",
    "defaults": {"max_steps": 2},
    "stages": {
        "sft": {"uses": "sft"},
        "check": {"uses": "eval", "model": "{{ sft }}"},
        "more": {"uses": "sft", "model": "{{ sft }}", "out": "second"},
    },
}


def configs(recipe) -> dict[str, dict]:
    return {sid: spec.config.model_dump(mode="json") for sid, spec in recipe.stages.items()}


def test_the_recipes_own_seed_is_the_recipe_itself():
    recipe = build_recipe(RECIPE)
    assert recipe_seed(recipe) == 0
    same = seeded_recipe(recipe, 0)
    assert configs(same) == configs(recipe), "seed 0 is exactly `llmpost run`'s run: reused, not retrained"


def test_another_seed_sets_every_stage_and_names_its_artifacts():
    seeded = seeded_recipe(build_recipe(RECIPE), 2)
    sft, check, more = (seeded.stages[sid].config for sid in ("sft", "check", "more"))
    assert sft.seed == check.seed == more.seed == 2
    assert (sft.out, check.out, more.out) == ("demo-sft-seed2", "demo-check-seed2", "second-seed2")
    assert check.model == more.model == "demo-sft-seed2", "references follow the seed's own artifacts"
    assert sft.max_steps == more.max_steps == 2, "the rest of the recipe is untouched"


def test_seeds_beat_set_and_a_recipe_with_mixed_seeds_suffixes_every_seed():
    overridden = build_recipe(RECIPE, [("--set", {"stages": {"sft": {"seed": 5, "max_steps": 3}}})])
    assert recipe_seed(overridden) is None  # sft 5, the others 0: no seed is the recipe's own
    assert seed_names(overridden, 0) == {"sft": "demo-sft-seed0", "check": "demo-check-seed0", "more": "second-seed0"}
    seeded = seeded_recipe(overridden, 1)
    assert seeded.stages["sft"].config.seed == 1, "--seeds sets every stage's seed, --set included"
    assert seeded.stages["sft"].config.max_steps == 3, "the other --set keys stay"


@pytest.mark.parametrize(("text", "expected"), [("0,1,2", [0, 1, 2]), ("3", [3]), (" 4, 7 ", [4, 7])])
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize(("text", "problem"), [("0,0,1", "0 repeated"), ("a,b", "whole numbers"),
                                               ("", "at least one seed"), ("-1", "0 or more")])
def test_parse_seeds_refuses(text, problem):
    with pytest.raises(ConfigError) as exc:
        parse_seeds(text)
    assert problem in str(exc.value)
