"""`llmpost plan STAGE|RECIPE --gpu-memory 24GB`: will it fit, and which knob to turn if not (llmpost.memplan)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llmpost.cli.options import ConfigOpt, ModelOpt, SetOpt, StoreOpt
from llmpost.cli.stage_runner import resolve_stage_config, results

PLAN_HELP = (
    "Estimate the peak memory of a stage (sft, rm, dpo, kto, grpo, ppo, judge, eval) or of every stage of a "
    "recipe, before running it, and say whether it fits on a GPU of --gpu-memory and which --set makes it fit.\n\n"
    "Counts weights (4-bit NF4 under --qlora), the LoRA adapter, gradients, optimizer states, activations "
    "(batch x max_length tokens, gradient checkpointing), the LM head, generation caches, and the models a "
    "stage holds at once (DPO/KTO/PPO reference, reward models). Offline: the model's shape comes from a local "
    "config.json, an artifact, the Hugging Face cache, or a built-in table of common families. The stage "
    "config is resolved exactly as the stage command resolves it (--config, --set)."
)
GpuMemoryOpt = Annotated[str | None, typer.Option(
    "--gpu-memory", "-g", help="Memory of one GPU, e.g. 24GB (GB = GiB, as on GPU spec sheets). Without it: estimate only.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="'cuda' (GPU: bf16 by default) or 'cpu' (fp32; the peak RSS).")]
ModelConfigOpt = Annotated[Path | None, typer.Option(
    "--model-config", help="A Hugging Face config.json (or its directory) giving the model's shape.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the plan as JSON (one object per stage, in a list).")]


def register(app: typer.Typer) -> None:
    @app.command(
        "plan", help=PLAN_HELP,
        epilog="Example: llmpost plan sft --model Qwen/Qwen2.5-7B --set qlora=true --gpu-memory 24GB",
    )
    def plan(
        target: Annotated[str, typer.Argument(help="A stage name (sft, dpo, ...) or a recipe YAML file.")],
        gpu_memory: GpuMemoryOpt = None,
        model: ModelOpt = None,
        model_config: ModelConfigOpt = None,
        device: DeviceOpt = "cuda",
        config: ConfigOpt = None,
        set_: SetOpt = None,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ):
        from llmpost.artifacts.store import Store
        from llmpost.errors import ConfigError
        from llmpost.memplan.planner import is_recipe, plan_config, plan_recipe
        from llmpost.memplan.report import parse_size, render, to_dict

        if device not in ("cuda", "cpu"):
            raise ConfigError([f"--device {device!r}: choose cuda or cpu"])
        budget = parse_size(gpu_memory) if gpu_memory else None
        shape = str(model_config) if model_config else None
        where = dict(device=device, budget=budget, model_config=shape, store=Store.default(store))
        if is_recipe(target):
            planned = plan_recipe(Path(target), model=model, config_file=config, sets=set_, **where)
        else:
            # --model-config alone: the plan is of that model, so its config is resolved as for that model
            cfg = resolve_stage_config(target, flags={"model": model or shape}, config_file=config, sets=set_)
            planned = [plan_config(target, cfg, **where)]
        if as_json:
            print(json.dumps([to_dict(p.plan, budget, p.knobs) for p in planned], indent=2))
            return
        for p in planned:
            render(results, p.plan, budget, p.knobs)
