"""`llmpost run RECIPE --seeds 0,1,2` (or `seeds: [0, 1, 2]` in the recipe): the whole flow once per seed.

    result = run_seeds(load_recipe("recipes/quickstart.yaml"), Store.default(), [0, 1, 2])

Each seed's flow is the recipe with every stage's `seed` set to that seed (beating the
recipe and `--set`), run by `runner.run_recipe` as a single-seed run is, with `--only`,
`--until`, `--force` and `--dry-run` applying to each seed. Every seed is planned before
any runs, so a selection that cannot be satisfied fails in seconds. One run record,
`run-<recipe>`, then gives each seed's figures and the mean over seeds with its 95%
interval (`pipeline/report.py`, `evaluation/seeds.py`).

Names. The seed the recipe itself runs with (its stages' `seed`, 0 unless set) keeps the
recipe's artifact names: that flow is exactly what `llmpost run RECIPE` makes, so an
earlier single-seed run is reused rather than trained again, and a later one reuses it.
Every other seed writes NAME-seedN (`quickstart-sft-seed1`), so `llmpost ls` shows which
seed an artifact belongs to and `NAME` stays the recipe's own run. When the recipe's
stages have different seeds, no seed is the recipe's own and every seed is suffixed. A
stage whose config has no `seed` and that needs no seeded stage is the same for every
seed: it keeps its name, runs once and is reused by the other seeds (by fingerprint).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console

from llmpost.artifacts.store import Artifact, Store
from llmpost.config.resolve import deep_merge
from llmpost.errors import ConfigError
from llmpost.pipeline.recipe import Recipe, build_recipe, seed_problems
from llmpost.pipeline.runner import RunResult, run_recipe


@dataclass
class SeedsResult:
    """A run of the flow once per seed."""

    recipe: Recipe  # as given (the seeds' own recipes are `seeded_recipe(recipe, seed)`)
    seeds: list[int]
    runs: dict[int, RunResult] = field(default_factory=dict)  # seed -> its run (its plan only, in a dry run)
    means: list[dict] = field(default_factory=list)  # per stage, the figures over seeds (`report.over_seeds`)
    record: Artifact | None = None  # the one run record of every seed; None when a stage failed
    record_reused: bool = False
    wall_time_s: float = 0.0

    @property
    def failed(self) -> dict[str, BaseException]:
        """`STAGE (seed N)` -> its error, over every seed."""
        return {f"{sid} (seed {seed})": exc for seed, run in self.runs.items() for sid, exc in run.failed.items()}


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0,1,2` as a list; ConfigError when it is not a list of distinct seeds."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError([f"--seeds {text}: expected whole numbers separated by commas, e.g. 0,1,2"],
                          source="--seeds") from None
    problems = seed_problems(seeds)
    if problems:
        raise ConfigError([f"--seeds {text}: {p}" for p in problems], source="--seeds")
    return seeds


def run_seeds(recipe: Recipe, store: Store, seeds: list[int], *, only: list[str] | None = None,
              until: list[str] | None = None, force: list[str] | None = None, dry_run: bool = False,
              console: Console | None = None, on_plan=None) -> SeedsResult:
    """Plan every seed's flow, then (unless `dry_run`) run them one after another and write one record.

    `on_plan(seed, plan)` is called with each seed's plan before anything runs. A failed stage
    skips what needs it in its own seed only; the record is written when every seed finished.
    """
    from llmpost.pipeline.report import over_seeds, write_seeds_record

    started = time.time()
    console = console or Console(stderr=True)
    recipes = {seed: seeded_recipe(recipe, seed) for seed in seeds}
    selection = {"only": only, "until": until, "force": force}
    result = SeedsResult(recipe, seeds)
    for seed, seeded in recipes.items():
        report = (lambda plan, seed=seed: on_plan(seed, plan)) if on_plan is not None else None
        result.runs[seed] = run_recipe(seeded, store, **selection, dry_run=True, console=console, on_plan=report)
    if dry_run:
        return result
    for seed, seeded in recipes.items():
        console.rule(f"[bold]seed {seed}[/bold]", characters="=")
        # planned again: a stage every seed shares has just been made by the seed before
        result.runs[seed] = run_recipe(seeded, store, **selection, console=console, record=False)
    result.means = over_seeds(result)  # once: a two-way bootstrap over a thousand items takes a moment
    if not result.failed:
        result.record, result.record_reused = write_seeds_record(result, store)
    result.wall_time_s = time.time() - started
    return result


def seeded_recipe(recipe: Recipe, seed: int) -> Recipe:
    """The recipe's flow for one seed: each seeded stage's `seed` set to it and its artifact named for it."""
    names = seed_names(recipe, seed)
    fields = {sid: type(spec.config).model_fields for sid, spec in recipe.stages.items()}
    layer = {"stages": {sid: {key: value for key, value in (("seed", seed), ("out", names[sid])) if key in fields[sid]}
                        for sid in seeded_stages(recipe)}}
    overrides = dict(recipe.source.get("overrides") or {})
    # on top of everything, --set included: --seeds decides the seed
    overrides["--set"] = deep_merge(overrides.get("--set") or {}, layer)
    seeded = build_recipe(recipe.source["recipe"], list(overrides.items()))
    seeded.path = recipe.path
    if "config_file" in recipe.source:
        seeded.source["config_file"] = recipe.source["config_file"]
    return seeded


def seed_names(recipe: Recipe, seed: int) -> dict[str, str]:
    """Each stage's artifact name in the flow for `seed` (module docstring: why these names)."""
    own = recipe_seed(recipe)
    seeded = seeded_stages(recipe)
    return {sid: spec.out if sid not in seeded or seed == own else f"{spec.out}-seed{seed}"
            for sid, spec in recipe.stages.items()}


def recipe_seed(recipe: Recipe) -> int | None:
    """The seed every stage of the recipe runs with, as written; None when its stages differ."""
    seeds = {spec.config.seed for spec in recipe.stages.values() if has_seed(spec)}
    return seeds.pop() if len(seeds) == 1 else None


def seeded_stages(recipe: Recipe) -> set[str]:
    """The stages that differ from seed to seed: those with a `seed`, and every stage that needs one."""
    seeded: set[str] = set()
    for sid, spec in recipe.stages.items():  # in run order: what a stage needs comes first
        if has_seed(spec) or any(need in seeded for need in spec.needs):
            seeded.add(sid)
    return seeded


def has_seed(spec) -> bool:
    return "seed" in type(spec.config).model_fields
