"""Per stage of a recipe: reuse a finished artifact, resume an interrupted run, or run — and why.

A stage is reused when a finished artifact of its name has the same fingerprint
(stage + resolved config minus `out` + parent artifact ids + dataset fingerprints,
see `execute.fingerprint_of`). It resumes when an interrupted run with that
fingerprint left a checkpoint. Otherwise it runs, and the reason names what changed
since the newest artifact of that name (config keys, an input, the data).

Deciding needs the stage's inputs resolved, so a stage after one that has yet to
run can only be "run (after X runs)". A model or dataset that lives on the hub and
is not available offline is not an error here: it is fetched when the stage runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from llmpost.artifacts.store import Artifact, Store
from llmpost.errors import ConfigError, LlmpostError
from llmpost.pipeline.dag import ancestors
from llmpost.pipeline.execute import fingerprint_of, fingerprinted, work_dir_for
from llmpost.pipeline.recipe import Recipe, StageSpec, with_refs
from llmpost.stages import load_stage
from llmpost.stages.context import StageContext
from llmpost.stages.training import last_checkpoint

REUSE, RESUME, RUN, SKIP = "reuse", "resume", "run", "skip"
# OWNER/NAME, optionally @REVISION and :SPLIT: what the model and data loaders send to the hub.
HUB_ID_RE = re.compile(r"^[\w.-]+/[\w.-]+(@[\w./-]+)?(:[\w.\-\[\]%]+)?$")


@dataclass
class Decision:
    """What happens to one stage, and why."""

    id: str
    uses: str
    out: str
    action: str  # reuse | resume | run | skip
    reason: str
    artifact: Artifact | None = None  # the artifact reused
    cfg: BaseModel | None = None  # the exact config; None while a stage it needs has yet to run
    prepared: tuple[StageContext, str] | None = None  # (context, fingerprint), handed to execute_stage


def decide_stages(recipe: Recipe, store: Store, *, selected: set[str], force: set[str],
                  console: Console | None = None) -> list[Decision]:
    """Decide every stage in run order, as if the stages before it had run; raise ConfigError for
    stages whose inputs are missing, or that a selection needs but cannot reuse."""
    console = console or Console(stderr=True)
    needed = ancestors(recipe.needs(), selected) - selected
    refs: dict[str, str] = {}
    plan: list[Decision] = []
    problems: list[str] = []
    for spec in recipe.stages.values():
        if spec.id not in selected and spec.id not in needed:
            plan.append(Decision(spec.id, spec.uses, spec.out, SKIP, "not selected"))
            continue
        try:
            decision = decide(spec, refs, store, forced=spec.id in force and spec.id in selected, console=console)
        except LlmpostError as exc:
            problems.append(f"stages.{spec.id}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            decision = Decision(spec.id, spec.uses, spec.out, RUN, "inputs missing")
        if spec.id in needed and decision.action != REUSE and decision.cfg is not None:
            wanted = sorted(s for s in selected if spec.id in ancestors(recipe.needs(), {s}))
            problems.append(f"stages.{spec.id}: needed by {', '.join(wanted)} but has no reusable artifact "
                            f"({decision.reason}); run it first with `--until {spec.id}`, or drop --only")
        if decision.action == REUSE:
            refs[spec.id] = decision.artifact.ref
        plan.append(decision)
    if problems:
        raise ConfigError(problems, source="run plan", hint="nothing was run")
    return plan


def decide(spec: StageSpec, refs: dict[str, str], store: Store, *, forced: bool = False,
           console: Console | None = None) -> Decision:
    """The decision for one stage, given the artifact refs of the stages it needs (missing = yet to run)."""
    pending = [n for n in spec.needs if n not in refs]
    if pending:
        return Decision(spec.id, spec.uses, spec.out, RUN, f"after `{pending[0]}` runs")
    cfg = with_refs(spec, refs)
    decision = Decision(spec.id, spec.uses, spec.out, RUN, "", cfg=cfg)
    prepared, unavailable = inspect_inputs(spec.uses, cfg, store, console or Console(stderr=True))
    if prepared is None:
        decision.reason = unavailable
        return decision
    decision.prepared = prepared
    ctx, fingerprint = prepared
    checkpoint = last_checkpoint(work_dir_for(store, spec.out, fingerprint))
    if forced:
        decision.reason = "forced (--force): runs from scratch"
    elif (found := store.find_by_fingerprint(spec.out, fingerprint)) is not None:
        decision.action, decision.artifact, decision.reason = REUSE, found, f"identical fingerprint: {found.ref}"
    elif checkpoint is not None:
        decision.action, decision.reason = RESUME, f"an interrupted run left {checkpoint.name}"
    else:
        decision.reason = what_changed(store, spec.out, cfg, ctx)
    return decision


def inspect_inputs(stage: str, cfg: BaseModel, store: Store,
                   console: Console) -> tuple[tuple[StageContext, str] | None, str]:
    """Resolve the stage's inputs and fingerprint them, as `execute.prepare` does; a hub model or
    dataset not available offline gives (None, why) instead of an error."""
    module = load_stage(stage)
    ctx = StageContext(stage=stage, name=cfg.out or stage, store=store, console=console)
    wanted = module.inputs(cfg)
    for kind, load in (("models", ctx.model), ("data", ctx.data)):
        for ref in wanted.get(kind, []):
            try:
                load(ref)
            except LlmpostError:
                if not looks_remote(ref):
                    raise
                return None, f"`{ref}` is not available offline: fetched from the hub when the stage runs"
    return (ctx, fingerprint_of(stage, cfg, ctx)), ""


def looks_remote(ref: str) -> bool:
    """A hub id (OWNER/NAME) rather than something local (builtin:, a path, an artifact)."""
    return not ref.startswith(("builtin:", "/", ".", "~")) and bool(HUB_ID_RE.match(ref)) and not Path(ref).exists()


def what_changed(store: Store, name: str, cfg: BaseModel, ctx: StageContext) -> str:
    """Why the newest artifact named `name` cannot be reused: the config keys, inputs or data that differ."""
    earlier = store.list(name)
    if not earlier:
        return "no earlier run"
    last = earlier[-1]
    before = last.manifest
    if before.get("stage") != ctx.stage:
        return f"{last.ref} was made by `{before.get('stage')}`"
    changes = config_changes(before.get("config") or {}, cfg.model_dump(mode="json"))
    if changes:
        shown = ", ".join(changes[:3]) + (f" (+{len(changes) - 3} more)" if len(changes) > 3 else "")
        return f"config changed since {last.ref}: {shown}"
    old_inputs = sorted(p.get("ref", p.get("id")) for p in before.get("parents") or [])
    new_inputs = sorted(p["ref"] for p in ctx.parents())
    if old_inputs != new_inputs:
        return f"input changed since {last.ref}: {', '.join(old_inputs) or '-'} -> {', '.join(new_inputs) or '-'}"
    old_data = {d["ref"]: d["fingerprint"] for d in before.get("datasets") or []}
    changed = [d["ref"] for d in ctx.dataset_records() if old_data.get(d["ref"]) != d["fingerprint"]]
    if changed:
        return f"data changed since {last.ref}: {', '.join(changed)}"
    if before.get("base_model") != ctx.base_model():
        return f"base model changed since {last.ref}"
    return f"fingerprint differs from {last.ref}"


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old -> new` for every dotted key that differs (those the fingerprint leaves out aside)."""
    flat_old, flat_new = flatten(old), flatten(new)
    keys = [k for k in flat_new if fingerprinted(k)]
    keys += [k for k in flat_old if k not in flat_new and fingerprinted(k)]
    return [f"{k}: {short(flat_old.get(k))} -> {short(flat_new.get(k))}" for k in keys
            if flat_old.get(k) != flat_new.get(k)]


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            out.update(flatten(item, path + "."))
        else:
            out[path] = item
    return out


def short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
