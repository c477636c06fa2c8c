"""`llmpost run RECIPE.yaml`: a whole post-training flow from one file (the work is in llmpost.pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmpost.cli.options import PrintConfigOpt, StoreOpt
from llmpost.cli.stage_runner import console, results

RUN_HELP = (
    "Run a recipe: stages (sft, rm, ppo, dpo, judge, grpo, eval) wired by `{{ STAGE_ID }}` references.\n\n"
    "Each stage is reused when a finished artifact with the same fingerprint (stage, config, input artifacts, "
    "data) is in the store, resumed from its last checkpoint after an interrupted run, and run otherwise. "
    "The whole recipe is validated first, and every problem is listed at once.\n\n"
    "Config precedence per stage, lowest to highest: stage defaults < recipe `defaults:` < the recipe's stage "
    "block < --config FILE < --set.\n\n"
    "The summary (a table here; report.md, summary.json and a plot in the `run-<recipe>` artifact) shows each "
    "stage's artifact, wall time and held-out metrics side by side."
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
        print_config: PrintConfigOpt = False,
        store: StoreOpt = None,
    ):
        from llmpost.artifacts.store import Store
        from llmpost.pipeline.recipe import load_recipe
        from llmpost.pipeline.report import plan_table, summary_table
        from llmpost.pipeline.runner import run_recipe

        loaded = load_recipe(recipe, config_file=config, sets=set_)
        if print_config:
            print_configs(loaded)
            return
        out = results if dry_run else console
        title = f"plan for `{loaded.name}` ({recipe})"
        result = run_recipe(loaded, Store.default(store), only=only, until=until, force=force, dry_run=dry_run,
                            console=console, on_plan=lambda plan: out.print(plan_table(plan, title)))
        if not dry_run:
            results.print(summary_table(result))
            if result.record is not None:
                results.print(f"report: [bold]{result.record.ref}[/bold] -> {result.record.path / 'report.md'}")
        if result.failed:  # the first failure decides the exit code and the error printed
            raise next(iter(result.failed.values()))


def print_configs(recipe) -> None:
    """Every stage's resolved config as YAML (references shown as the artifact name they will point to)."""
    import yaml

    configs = {sid: {"uses": spec.uses, **spec.config.model_dump(mode="json")} for sid, spec in recipe.stages.items()}
    print(yaml.safe_dump({"name": recipe.name, "stages": configs}, sort_keys=False), end="")
