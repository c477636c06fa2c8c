"""Recipe files: the schema, references between stages, and each stage's layered config.

A recipe is one YAML file that chains stages into an end-to-end run:

    name: quickstart               # artifacts are named <name>-<stage id> unless a stage sets `out`
    description: what this run is for
    seeds: [0, 1, 2]               # optional: the whole flow once per seed (see `pipeline/seeds.py`)
    defaults:                      # applied to every stage whose config has the key
      model: tiny
      seed: 0
    stages:
      sft:                         # a stage id
        uses: sft                  # which stage: the keys below are `llmpost sft --config` keys
        max_steps: 1000
      dpo:
        uses: dpo
        model: "{{ sft }}"         # the artifact the `sft` stage produced, as NAME@vN
        launch:                    # optional: run this stage on N processes, as `--launcher` does
          launcher: torchrun       # (llmpost.pipeline.launch.settings.LaunchSettings; only rank 0 writes)
          num_processes: 2

`{{ ID }}` may appear anywhere in a string value (`data: "{{ judge }}"`); it both
wires the data flow and orders the stages. Precedence for each stage, lowest first:

    stage defaults < recipe `defaults:` < the stage block < `--config FILE` < `--set`

`--config FILE` is recipe-shaped (`defaults:` and/or `stages: {ID: {...}}`); `--set`
takes `stages.ID.KEY=VALUE` or `defaults.KEY=VALUE`. The layers are put in order by the
one `config.layers.stage_layers()` that `llmpost <stage>` uses too, and resolved by the
same `config.resolve.resolve()`. `load_recipe` validates the whole recipe and reports
every problem at once; running it is `pipeline.runner`.

A stage's `launch:` block is not part of its config: it says how the stage runs, and
like the device it leaves the fingerprint alone (see `stage_launches`), except for the
DeepSpeed/FSDP engine it names (see `add_engines`).
`--set stages.ID.launch.num_processes=4` overrides it like any other key.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from llmpost.artifacts.refs import is_valid_name
from llmpost.config.base import Strict
from llmpost.config.layers import stage_layers
from llmpost.config.resolve import deep_merge, describe_errors, load_yaml, parse_sets, resolve
from llmpost.errors import ConfigError
from llmpost.pipeline.dag import find_cycle, topological_order
from llmpost.pipeline.launch.settings import LaunchSettings

REF_RE = re.compile(r"\{\{(.*?)\}\}")
STAGE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
OVERLAY_KEYS = ("defaults", "stages")
OVERLAY_LAYERS = {"--config": "config_file", "--set": "sets"}  # each override's place in `stage_layers`
NOT_CONFIG = ("uses", "launch")  # stage-block keys that are not the stage's config
# The stages whose command takes --launcher; eval and judge generate in one process.
LAUNCHABLE = ("sft", "rm", "prm", "dpo", "kto", "grpo", "ppo")
HINT = "fix the recipe (see `llmpost run --help`); every problem is listed above"


class RecipeFile(Strict):
    """The top level of a recipe YAML."""

    name: str = Field(description="run name; stages write <name>-<stage id> unless they set `out`")
    description: str = Field("", description="what this recipe is for")
    seeds: list[int] | None = Field(
        None, description="run the flow once per seed, each stage's `seed` set to it (as `llmpost run --seeds`)")
    defaults: dict[str, Any] = Field(default_factory=dict, description="keys applied to every stage that has them")
    stages: dict[str, dict[str, Any]] = Field(description="stage id -> {uses: STAGE, ...that stage's config keys}")


@dataclass
class StageSpec:
    """One stage of a recipe, validated.

    `layers` are its config sources in precedence order (`config.layers.stage_layers`),
    `{{ ID }}` references still in place; `config` is them resolved with each reference
    standing for the referenced stage's artifact name and the engine of its `launch:`
    applied (at run time, `with_refs` puts in the exact NAME@vN).
    """

    id: str
    uses: str
    config: BaseModel
    layers: list[dict[str, Any]]
    needs: list[str] = field(default_factory=list)  # the stages it references, in order of appearance
    launch: LaunchSettings | None = None  # its `launch:` block: run under torchrun/accelerate (None: in-process)

    @property
    def out(self) -> str:
        """The artifact name this stage writes."""
        return self.config.out


@dataclass
class Recipe:
    """A validated recipe: its stages in the order they run."""

    name: str
    description: str
    stages: dict[str, StageSpec]  # topological order; ties keep the file's order
    source: dict[str, Any]  # the recipe as read, with the overrides it was given (for the run record)
    path: Path | None = None
    seeds: list[int] | None = None  # its `seeds:`: run once per seed (`pipeline/seeds.py`)

    def needs(self) -> dict[str, list[str]]:
        """Stage id -> the ids it depends on."""
        return {sid: spec.needs for sid, spec in self.stages.items()}


def load_recipe(path: str | Path, *, config_file: str | Path | None = None, sets: list[str] | None = None) -> Recipe:
    """Read and validate the recipe at `path` with its overrides; raise one ConfigError listing every problem."""
    raw = load_yaml(path, what="recipe")
    overlays = []
    if config_file is not None:
        overlays.append(("--config", load_yaml(config_file)))
    if sets:
        overlays.append(("--set", parse_sets(sets)))
    recipe = build_recipe(raw, overlays)
    recipe.path = Path(path)
    if config_file is not None:
        recipe.source["config_file"] = str(config_file)
    return recipe


def build_recipe(raw: dict[str, Any], overlays: list[tuple[str, dict]] | None = None) -> Recipe:
    """Validate a recipe mapping plus its overrides, ("--config", layer) and/or ("--set", layer), into a `Recipe`."""
    from llmpost.stages import STAGES

    overlays = overlays or []
    problems: list[str] = []
    try:
        top = RecipeFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_errors(RecipeFile, exc), source="recipe", hint=HINT) from None
    if not is_valid_name(top.name):
        problems.append(f"name: {top.name!r} cannot start an artifact name; use letters, digits, '.', '_', '-'")
    if not top.stages:
        problems.append("stages: a recipe needs at least one stage")
    if top.seeds is not None:
        problems += [f"seeds: {p}" for p in seed_problems(top.seeds)]
    problems += check_overlays(overlays, list(top.stages))

    uses: dict[str, str] = {}
    needs: dict[str, list[str]] = {}
    for sid, block in top.stages.items():
        where = f"stages.{sid}"
        if not STAGE_ID_RE.fullmatch(sid):
            problems.append(f"{where}: a stage id uses letters, digits, '_' and '-', starting with a letter or digit")
        stage = block.get("uses")
        if stage is None:
            problems.append(f"{where}.uses: missing; one of: {', '.join(STAGES)}")
        elif stage not in STAGES:
            problems.append(f"{where}.uses: unknown stage {stage!r}; one of: {', '.join(STAGES)}"
                            f"{did_you_mean(str(stage), list(STAGES))}")
        else:
            uses[sid] = stage
        needs[sid] = []
        for key_path, name in references(block):
            if name not in top.stages:
                problems.append(f"{where}.{key_path}: `{{{{ {name} }}}}` names no stage"
                                f"{did_you_mean(name, list(top.stages))}")
            elif name == sid:
                problems.append(f"{where}.{key_path}: a stage cannot use its own output")
            elif name not in needs[sid]:
                needs[sid].append(name)
    for key_path, name in references(top.defaults):
        problems.append(f"defaults.{key_path}: `{{{{ {name} }}}}`: stage references belong in a stage block")
    cycle = find_cycle(needs)
    if cycle:
        problems.append("stages: references form a cycle: " + " -> ".join(cycle))

    layers = recipe_stage_layers(top, uses, overlays, problems)
    configs = resolve_stage_configs(layers, uses, top.name, problems)
    launches = stage_launches(top, uses, overlays, problems)
    add_engines(launches, uses, configs, problems)
    problems += duplicate_outputs(configs)
    if problems:
        raise ConfigError(problems, source="recipe", hint=HINT)
    order = topological_order(needs, list(top.stages))
    stages = {sid: StageSpec(sid, uses[sid], configs[sid], layers[sid], needs[sid], launches.get(sid))
              for sid in order}
    source = {"recipe": raw, "overrides": {label: layer for label, layer in overlays}}
    return Recipe(top.name, top.description, stages, source, seeds=top.seeds)


def seed_problems(seeds: list[int]) -> list[str]:
    """What is wrong with a list of seeds to run (the recipe's `seeds:` or `--seeds`)."""
    problems = []
    if not seeds:
        problems.append("give at least one seed, e.g. [0, 1, 2]")
    if any(seed < 0 for seed in seeds):
        problems.append(f"seeds are 0 or more: {', '.join(str(s) for s in seeds if s < 0)}")
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        problems.append(f"each seed once: {', '.join(map(str, repeated))} repeated")
    return problems


def recipe_stage_layers(top: RecipeFile, uses: dict[str, str], overlays: list[tuple[str, dict]],
                        problems: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each known stage's config layers (`config.layers.stage_layers`); problems in `defaults` are appended."""
    from llmpost.stages import load_stage

    config_classes = {sid: load_stage(stage).Config for sid, stage in uses.items()}
    problems += check_defaults(top.defaults, config_classes, "defaults")
    for label, layer in overlays:
        problems += check_defaults(layer.get("defaults") or {}, config_classes, f"{label} defaults")
    layers: dict[str, list[dict[str, Any]]] = {}
    for sid, cls in config_classes.items():
        fields = cls.model_fields
        own_out = {"out": f"{top.name}-{sid}"} if "out" in fields else {}
        # an override's `defaults:` first, then its block for this stage, as in the recipe itself
        overrides = {OVERLAY_LAYERS[label]: deep_merge(applicable(layer.get("defaults") or {}, fields),
                                                       config_keys((layer.get("stages") or {}).get(sid) or {}))
                     for label, layer in overlays}
        layers[sid] = stage_layers(recipe_defaults={**own_out, **applicable(top.defaults, fields)},
                                   recipe_stage=config_keys(top.stages[sid]), **overrides)
    return layers


def config_keys(block: dict[str, Any]) -> dict[str, Any]:
    """A stage block's config keys: all but `uses:` and `launch:`."""
    return {k: v for k, v in block.items() if k not in NOT_CONFIG}


def stage_launches(top: RecipeFile, uses: dict[str, str], overlays: list[tuple[str, dict]],
                   problems: list[str]) -> dict[str, LaunchSettings]:
    """Each stage's `launch:` block, overrides layered on it, validated (problems are appended).

    `launch:` is kept out of the stage's config, hence out of its fingerprint, as the device
    is: a stage that ran in one process is reused when `launch:` is added, and the reverse.
    Under DDP the global batch is batch_size x processes, so a run on more processes is not
    bit-identical; `--force ID` retrains it.
    """
    launches: dict[str, LaunchSettings] = {}
    for sid, stage in uses.items():
        blocks = [top.stages[sid]] + [(layer.get("stages") or {}).get(sid) for _, layer in overlays]
        given = [block["launch"] for block in blocks if isinstance(block, dict) and "launch" in block]
        where = f"stages.{sid}.launch"
        if not given:
            continue
        if stage not in LAUNCHABLE:
            problems.append(f"{where}: the {stage} stage runs in one process and cannot be launched; remove it "
                            f"(stages that can: {', '.join(LAUNCHABLE)})")
        elif not all(isinstance(each, dict) for each in given):
            problems.append(f"{where}: expected a mapping, e.g. {{launcher: torchrun, num_processes: 2}}")
        else:
            try:
                launches[sid] = resolve(LaunchSettings, given, source="launch")
            except ConfigError as exc:
                problems += [under(where, p) for p in exc.problems]
    return launches


def add_engines(launches: dict[str, LaunchSettings], uses: dict[str, str], configs: dict[str, BaseModel],
                problems: list[str]) -> None:
    """Put DeepSpeed/FSDP into the stage's `trainer:` as `--deepspeed`/`--fsdp` do (`relaunch.with_engine`).

    Unlike the process count, the engine does reach the config (and so the manifest and the
    fingerprint): it changes the trainer arguments and the checkpoints a rerun resumes from.
    """
    from llmpost.pipeline.launch.relaunch import with_engine

    for sid, settings in launches.items():
        if sid not in configs:
            continue
        try:
            configs[sid] = with_engine(uses[sid], configs[sid], settings)
        except ConfigError as exc:
            problems += [f"stages.{sid}.launch: {p.removeprefix('(top level): ')}" for p in exc.problems]


def under(where: str, problem: str) -> str:
    """A problem reported by `resolve()` (`key: why`), placed at `where` in the recipe."""
    if problem.startswith("(top level): "):
        return f"{where}: {problem.removeprefix('(top level): ')}"
    return f"{where}.{problem}"


def resolve_stage_configs(layers: dict[str, list[dict]], uses: dict[str, str], recipe_name: str,
                          problems: list[str]) -> dict[str, BaseModel]:
    """Validate every stage's config, references standing for the artifact names they will point to."""
    outputs = {sid: merged(each).get("out") or f"{recipe_name}-{sid}" for sid, each in layers.items()}
    configs: dict[str, BaseModel] = {}
    for sid, each in layers.items():
        placeholders = {ref: outputs.get(ref, ref) for _, ref in references(each)}
        try:
            configs[sid] = resolve_layers(uses[sid], each, placeholders)
        except ConfigError as exc:
            problems += [f"stages.{sid}.{p}" for p in exc.problems]
            continue
        out = getattr(configs[sid], "out", None)
        if out is not None and not is_valid_name(out):
            problems.append(f"stages.{sid}.out: {out!r} is not a valid artifact name")
    return configs


def resolve_layers(stage: str, layers: list[dict[str, Any]], refs: dict[str, str]) -> BaseModel:
    """The stage's config from `layers` (via the one `resolve()`), with `{{ ID }}` replaced by `refs[ID]`."""
    from llmpost.stages import load_stage

    return resolve(load_stage(stage).Config, [fill_refs(layer, refs) for layer in layers], source=f"{stage} config")


def with_refs(spec: StageSpec, refs: dict[str, str]) -> BaseModel:
    """The stage's config with every `{{ ID }}` replaced by `refs[ID]` (the exact artifact ref), engine applied."""
    from llmpost.pipeline.launch.relaunch import with_engine

    cfg = resolve_layers(spec.uses, spec.layers, refs)
    return with_engine(spec.uses, cfg, spec.launch) if spec.launch is not None else cfg


def merged(layers: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        out = deep_merge(out, layer)
    return out


def check_overlays(overlays: list[tuple[str, dict]], stage_ids: list[str]) -> list[str]:
    """Overrides must be recipe-shaped and name stages that exist."""
    problems = []
    for label, layer in overlays:
        for key, value in layer.items():
            if key not in OVERLAY_KEYS:
                problems.append(f"{label} {key}: in a recipe run, write stages.ID.{key}=... (one stage) "
                                f"or defaults.{key}=... (every stage that has it)")
            elif not isinstance(value, dict):
                problems.append(f"{label} {key}: expected a mapping")
        for sid, block in (layer.get("stages") or {}).items():
            if sid not in stage_ids:
                problems.append(f"{label} stages.{sid}: no such stage{did_you_mean(sid, stage_ids)}")
            elif not isinstance(block, dict):
                problems.append(f"{label} stages.{sid}: expected a mapping of keys")
            elif "uses" in block:
                problems.append(f"{label} stages.{sid}.uses: a stage's kind is set in the recipe only")
    return problems


def check_defaults(defaults: dict[str, Any], config_classes: dict[str, type[BaseModel]], where: str) -> list[str]:
    """Every default must be a key of at least one stage; `out` is per stage by nature."""
    known = sorted({name for cls in config_classes.values() for name in cls.model_fields})
    problems = []
    for key in defaults:
        if key == "out":
            problems.append(f"{where}.out: every stage writes its own artifact; set `out` in a stage block")
        elif key == "launch":
            problems.append(f"{where}.launch: how a stage runs is set per stage: stages.ID.launch")
        elif config_classes and key not in known:
            problems.append(f"{where}.{key}: not a setting of any stage in this recipe{did_you_mean(key, known)}")
    return problems


def applicable(defaults: dict[str, Any], fields: dict) -> dict[str, Any]:
    """The defaults a stage's config has a field for (e.g. `lora` is skipped for `eval`)."""
    return {k: v for k, v in defaults.items() if k in fields and k != "out"}


def duplicate_outputs(configs: dict[str, BaseModel]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for sid, cfg in configs.items():
        out = getattr(cfg, "out", None)
        if out in seen:
            problems.append(f"stages.{sid}.out: `{out}` is also written by stage `{seen[out]}`; give each its own")
        elif out is not None:
            seen[out] = sid
    return problems


def references(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(dotted key path, stage id) for every `{{ ID }}` inside `value`."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += references(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += references(item, f"{path}[{i}]")
    elif isinstance(value, str):
        found += [(path, m.group(1).strip()) for m in REF_RE.finditer(value)]
    return found


def fill_refs(value: Any, refs: dict[str, str]) -> Any:
    """`value` with every `{{ ID }}` inside its strings replaced by `refs[ID]` (unknown ids stay as written)."""
    if isinstance(value, dict):
        return {k: fill_refs(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_refs(v, refs) for v in value]
    if isinstance(value, str):
        return REF_RE.sub(lambda m: refs.get(m.group(1).strip(), m.group(0)), value)
    return value


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""
