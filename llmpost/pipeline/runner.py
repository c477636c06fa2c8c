"""Run a recipe: plan every stage, then reuse, resume or run each in order, then write the run record.

    recipe = load_recipe("recipes/quickstart.yaml", sets=["stages.dpo.beta=0.2"])
    result = run_recipe(recipe, Store.default())

Selection: `only` runs just those stages (the stages they need must be reusable);
`until` runs those stages and everything they need; `force` reruns a stage from
scratch even when it could be reused (and so reruns what depends on it). With
`dry_run`, only the plan is made. The whole plan is made before anything runs, so
a missing input or a selection that cannot be satisfied fails in seconds.

Several seeds (`--seeds`, a recipe's `seeds:`) run this once per seed: `pipeline/seeds.py`.

A stage with a `launch:` block runs as `llmpost STAGE --launcher ...` does
(`llmpost.pipeline.launch.relaunch.launch_stage`): on N processes, rank 0 alone writing
its artifact into the store.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

from rich.console import Console

from llmpost.artifacts.store import Artifact, Store
from llmpost.errors import ConfigError
from llmpost.pipeline.dag import selection
from llmpost.pipeline.decisions import REUSE, SKIP, Decision, decide, decide_stages
from llmpost.pipeline.execute import Outcome, execute_stage, work_dir_for
from llmpost.pipeline.launch.engines import check_engines
from llmpost.pipeline.recipe import Recipe, did_you_mean
from llmpost.pipeline.report import first_line, write_run_record


@dataclass
class StageRun:
    """One stage's part in this run."""

    id: str
    uses: str
    status: str  # ran | resumed | reused
    outcome: Outcome

    @property
    def artifact(self) -> Artifact:
        return self.outcome.artifact


@dataclass
class RunResult:
    recipe: Recipe
    plan: list[Decision]
    stages: list[StageRun] = field(default_factory=list)
    record: Artifact | None = None  # the run record (report.md, plot) in the store; None when a stage failed
    record_reused: bool = False
    wall_time_s: float = 0.0  # this invocation, reused stages included
    failed: dict[str, BaseException] = field(default_factory=dict)  # stage id -> its error
    blocked: dict[str, str] = field(default_factory=dict)  # stage id -> the failed stage it needed


def run_recipe(recipe: Recipe, store: Store, *, only: list[str] | None = None, until: list[str] | None = None,
               force: list[str] | None = None, dry_run: bool = False, console: Console | None = None,
               on_plan=None, record: bool = True) -> RunResult:
    """Plan, then (unless `dry_run`) execute the recipe into `store`; see the module docstring.

    `on_plan(plan)` is called once the plan is made, before anything runs (the CLI prints it).
    A stage that fails does not stop the stages that do not need it (as `make -k`): they run, and
    `result.failed` / `result.blocked` say what did not; the run record is written only when
    every stage finished, and `record` is True (a run of several seeds writes one for them all,
    `pipeline/seeds.py`). Ctrl-C stops at once.
    """
    started = time.time()
    console = console or Console(stderr=True)
    only, until, force = list(only or []), list(until or []), list(force or [])
    check_stage_names(recipe, {"--only": only, "--until": until, "--force": force})
    selected = selection(recipe.needs(), only, until)
    plan = decide_stages(recipe, store, selected=selected, force=set(force), console=console)
    if on_plan is not None:
        on_plan(plan)
    result = RunResult(recipe, plan)
    if dry_run:
        return result
    check_launches(recipe, plan)
    check_trackers(recipe, plan)

    refs: dict[str, str] = {}
    for planned in plan:
        if planned.action == SKIP:
            continue
        spec = recipe.stages[planned.id]
        missing = [n for n in spec.needs if n in result.failed or n in result.blocked]
        if missing:
            result.blocked[spec.id] = missing[0]
            console.rule(f"[bold]{spec.id}[/bold] ({spec.uses}): skipped — `{missing[0]}` did not finish", align="left")
            continue
        forced = spec.id in force and spec.id in selected
        try:
            outcome = run_stage(spec, planned, refs, store, forced=forced, console=console)
        except KeyboardInterrupt:
            console.print(f"[bold red]stage `{spec.id}` was interrupted[/bold red]: the stages before it are kept; "
                          "rerunning the recipe reuses them and resumes it from its last checkpoint")
            raise
        except Exception as exc:  # reported with the summary; the caller re-raises it
            console.print(f"[bold red]stage `{spec.id}` failed[/bold red]: {first_line(exc)}")
            result.failed[spec.id] = exc
            continue
        status = "reused" if outcome.reused else ("resumed" if outcome.resumed_from_step is not None else "ran")
        refs[spec.id] = outcome.artifact.ref
        result.stages.append(StageRun(spec.id, spec.uses, status, outcome))

    if record and not result.failed:
        result.record, result.record_reused = write_run_record(result, store)
    result.wall_time_s = time.time() - started
    return result


def run_stage(spec, planned: Decision, refs: dict[str, str], store: Store, *, forced: bool,
              console: Console) -> Outcome:
    """Reuse, resume or run one stage, now that the stages it needs have artifacts (`refs`)."""
    # A plan made with every input known stays valid; one made before an upstream stage ran is redone.
    decision = planned if planned.cfg is not None else decide(spec, refs, store, forced=forced, console=console)
    console.rule(f"[bold]{spec.id}[/bold] ({spec.uses}): {decision.action} — {decision.reason}", align="left")
    if decision.action == REUSE:
        return Outcome(decision.artifact, True, 0.0)
    if forced and decision.prepared is not None:
        shutil.rmtree(work_dir_for(store, spec.out, decision.prepared[1]), ignore_errors=True)
    if spec.launch is not None and spec.launch.active:
        from llmpost.pipeline.launch.relaunch import launch_stage

        outcome = launch_stage(spec.uses, decision.cfg, store, spec.launch, console=console)
        # the launched rank 0 may have resumed from a checkpoint; its manifest says so
        outcome.resumed_from_step = outcome.artifact.manifest.get("resumed_from_step")
        return outcome
    return execute_stage(spec.uses, decision.cfg, store, console=console, prepared=decision.prepared)


def check_launches(recipe: Recipe, plan: list[Decision]) -> None:
    """A DeepSpeed/FSDP stage that cannot run on this machine fails before any stage runs."""
    for planned in plan:
        launch = recipe.stages[planned.id].launch
        if planned.action not in (REUSE, SKIP) and launch is not None:
            check_engines(launch)


def check_trackers(recipe: Recipe, plan: list[Decision]) -> None:
    """A tracker in a stage's `report_to` whose package is missing fails before any stage runs."""
    from llmpost.reporting.tracking import require

    wanted = {name: None for planned in plan if planned.action not in (REUSE, SKIP)
              for name in getattr(recipe.stages[planned.id].config, "report_to", [])}
    require(wanted)


def check_stage_names(recipe: Recipe, given: dict[str, list[str]]) -> None:
    """Every stage named on the command line must exist in the recipe."""
    ids = list(recipe.stages)
    problems = [f"{flag} {sid}: no such stage in `{recipe.name}`{did_you_mean(sid, ids)}"
                for flag, names in given.items() for sid in names if sid not in recipe.stages]
    if problems:
        raise ConfigError(problems, source="stage selection", hint="stages: " + ", ".join(ids))
