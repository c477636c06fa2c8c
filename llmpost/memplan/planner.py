"""The plans for one stage (`plan_config`) or every stage of a recipe (`plan_recipe`), with knobs for non-fits.

The CLI resolves a stage's config exactly as `llmpost <stage>` does (same layers,
same validation), so `llmpost plan sft --set batch_size=4` sizes the run
`llmpost sft --set batch_size=4` would do. In a recipe, a stage whose model is an
earlier stage's output inherits that stage's shape, and continues its adapter
when the earlier stage trained one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmpost.memplan.architecture import Architecture, from_config
from llmpost.memplan.report import Knob, suggest
from llmpost.memplan.stages import StagePlan, plan_stage


@dataclass
class Planned:
    plan: StagePlan
    cfg: BaseModel
    knobs: list[Knob] = field(default_factory=list)


def is_recipe(target: str) -> bool:
    return target.endswith((".yaml", ".yml")) or Path(target).is_file()


def plan_config(stage: str, cfg: BaseModel, *, device: str = "cuda", budget: float | None = None,
                model_config: str | None = None, store=None) -> Planned:
    """Plan `stage` run with its resolved config `cfg` on one `device`; with `budget` bytes, knobs for a non-fit."""
    arch = architecture_file(model_config) if model_config else None
    return finish(stage, cfg, budget, lambda c: plan_stage(stage, c, device=device, store=store, arch=arch))


def plan_recipe(path: Path, *, device: str = "cuda", budget: float | None = None, model: str | None = None,
                model_config: str | None = None, config_file: Path | None = None, sets: list[str] | None = None,
                store=None) -> list[Planned]:
    """Plan every stage of the recipe at `path` (with its --config/--set overrides), in run order."""
    from llmpost.pipeline.recipe import load_recipe

    arch = architecture_file(model_config) if model_config else None
    extra = [f"defaults.model={model}"] if model else []
    recipe = load_recipe(path, config_file=config_file, sets=[*(sets or []), *extra])
    produced: dict[str, StagePlan] = {}  # artifact name an earlier stage writes -> its plan
    out = []
    for spec in recipe.stages.values():
        model_ref = getattr(spec.config, "model", None) or getattr(spec.config, "policy", None)
        parent = produced.get(str(model_ref))
        stage_arch = parent.arch if parent is not None else arch
        method = parent.method if parent is not None and parent.method != "full" else None

        def replan(c, _spec=spec, _arch=stage_arch, _method=method):
            return plan_stage(_spec.uses, c, device=device, store=store, label=_spec.id, arch=_arch,
                              input_method=_method)

        planned = finish(spec.uses, spec.config, budget, replan)
        produced[spec.out] = planned.plan
        out.append(planned)
    return out


def finish(stage: str, cfg: BaseModel, budget: float | None, replan) -> Planned:
    plan = replan(cfg)
    knobs = suggest(stage, cfg, plan, budget, replan) if budget and plan.needed(budget) > budget else []
    return Planned(plan, cfg, knobs)


def architecture_file(path: str) -> Architecture:
    """`--model-config PATH`: a config.json (or a directory holding one) read as the model's shape."""
    import json

    from llmpost.errors import ModelError

    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise ModelError(f"--model-config {path}: no such config.json", hint="point at a Hugging Face config.json")
    data: dict[str, Any] = json.loads(p.read_text())
    return from_config(data, str(path), str(p))
