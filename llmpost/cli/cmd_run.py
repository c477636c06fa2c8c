"""`llmpost run RECIPE.yaml`: a whole post-training flow from one file (the work is in llmpost.pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmpost.cli.options import PrintConfigOpt, StoreOpt
from llmpost.cli.stage_runner import console, results

RUN_HELP = (
    "Run a recipe: stages (sft, rm, ppo, dpo, kto, judge, grpo, eval) wired by `{{ STAGE_ID }}` references.\n\n"
    "Each stage is reused when a finished artifact with the same fingerprint (stage, config, input artifacts, "
    "data) is in the store, resumed from its last checkpoint after an interrupted run, and run otherwise. "
    "The whole recipe is validated first, and every problem is listed at once.\n\n"
    "Config precedence per stage, lowest to highest: stage defaults < recipe `defaults:` < the recipe's stage "
    "block < --config FILE < --set.\n\n"
    "The summary (a table here; report.md, summary.json and a plot in the `run-<recipe>` artifact) shows each "
    "stage's artifact, wall time and held-out metrics side by side.\n\n"
    "--seeds 0,1,2 (or `seeds: [0, 1, 2]` in the recipe) runs the flow once per seed, every stage's `seed` set to "
    "it; the recipe's own seed keeps its artifact names (an earlier run is reused), other seeds write NAME-seedN. "
    "The summary then adds, per stage, the mean over seeds with a 95% interval that holds both item and seed "
    "noise. --only, --until, --force and --dry-run apply to each seed."
)

RecipeSetOpt = Annotated[list[str] | None, typer.Option(
    "--set", "-s", help="Override a key: --set stages.ID.KEY=VALUE (one stage) or --set defaults.KEY=VALUE "
                        "(every stage that has KEY), e.g. --set stages.dpo.beta=0.2 (repeatable).")]
RecipeConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="YAML overrides in the recipe's shape (`defaults:` and/or `stages: {ID: {...}}`).")]



def register(app: typer.Typer) -> None:
    @app.command(
        "run", help=RUN_HELP,
        epilog="Example: llmpost run recipes/quickstart.yaml --dry-run --set stages.dpo.beta=0.2",
    )
    def run(
        recipe: Annotated[Path, typer.Argument(help="Recipe YAML file (see recipes/).")],
        set_: RecipeSetOpt = None,
        config: RecipeConfigOpt = None,
        only: Annotated[list[str] | None, typer.Option("--only", help="Run only this stage (repeatable); "
                                                 "the stages it needs must be reusable.")] = None,
        until: Annotated[list[str] | None, typer.Option("--until", help="Run this stage and every stage it needs "
                                                  "(repeatable).")] = None,
        force: Annotated[list[str] | None, typer.Option("--force", help="Rerun this stage from scratch even if it could be "
                                                  "reused; what depends on it reruns too (repeatable).")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (per stage: reuse, resume or run, "
                                               "and why) and exit.")] = False,
        seeds: Annotated[str | None, typer.Option("--seeds", help="Run the flow once per seed, e.g. 0,1,2 "
                                                  "(beats the recipe's `seeds:`).")] = None,
        print_config: PrintConfigOpt = False,
        store: StoreOpt = None,
    ):
        from llmpost.artifacts.store import Store
        from llmpost.pipeline.recipe import load_recipe
        from llmpost.pipeline.report import plan_table, summary_table
        from llmpost.pipeline.runner import run_recipe
        from llmpost.pipeline.seeds import parse_seeds

        loaded = load_recipe(recipe, config_file=config, sets=set_)
        seed_list = parse_seeds(seeds) if seeds is not None else loaded.seeds
        if seed_list is not None:
            run_seeds_command(loaded, seed_list, recipe, Store.default(store), only=only, until=until, force=force,
                              dry_run=dry_run, print_config=print_config)
            return
        if print_config:
            print_configs(loaded)
            return
        out = results if dry_run else console
        title = f"plan for `{loaded.name}` ({recipe})"
        result = run_recipe(loaded, Store.default(store), only=only, until=until, force=force, dry_run=dry_run,
                            console=console, on_plan=lambda plan: out.print(plan_table(plan, title)))
        show_outcome(result, None if dry_run else summary_table(result))


def run_seeds_command(loaded, seeds: list[int], path: Path, store, *, print_config: bool, dry_run: bool,
                      **selection) -> None:
    """`llmpost run --seeds`: each seed's plan, then its run, then one summary of them all."""
    from llmpost.pipeline.report import plan_table, seeds_summary_table
    from llmpost.pipeline.seeds import run_seeds, seeded_recipe

    if print_config:
        for seed in seeds:
            print_configs(seeded_recipe(loaded, seed), seed=seed)
        return
    out = results if dry_run else console
    result = run_seeds(loaded, store, seeds, dry_run=dry_run, console=console, **selection,
                       on_plan=lambda seed, plan: out.print(plan_table(plan, f"plan for `{loaded.name}`, seed {seed} "
                                                                             f"({path})")))
    show_outcome(result, None if dry_run else seeds_summary_table(result))


def show_outcome(result, summary) -> None:
    """Print the run's summary table (None on a dry run) and where its report is; raise the first failure."""
    if summary is not None:
        results.print(summary)
        if result.record is not None:
            results.print(f"report: [bold]{result.record.ref}[/bold] -> {result.record.path / 'report.md'}")
    if result.failed:  # the first failure decides the exit code and the error printed
        raise next(iter(result.failed.values()))


def print_configs(recipe, seed: int | None = None) -> None:
    """Every stage's resolved config as YAML (references shown as the artifact name they will point to)."""
    import yaml

    configs = {sid: {"uses": spec.uses, **spec.config.model_dump(mode="json")} for sid, spec in recipe.stages.items()}
    header = {"name": recipe.name} | ({"seed": seed} if seed is not None else {})
    print(("---\n" if seed is not None else "") + yaml.safe_dump({**header, "stages": configs}, sort_keys=False), end="")
