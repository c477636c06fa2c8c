"""`llmpost sft` (and the pattern every training stage command follows)."""

from __future__ import annotations

import typer

from llmpost.cli.options import (
    PRECEDENCE,
    BatchOpt,
    ConfigOpt,
    DataOpt,
    DeepspeedOpt,
    EpochsOpt,
    FsdpOpt,
    LauncherOpt,
    LoraOpt,
    LrOpt,
    ModelOpt,
    NumProcessesOpt,
    OutOpt,
    PrintConfigOpt,
    QloraOpt,
    SeedOpt,
    SetOpt,
    StepsOpt,
    StoreOpt,
)
from llmpost.cli.stage_runner import console, resolve_stage_config, run_stage_command


def common_flags(model, data, out, seed, epochs, max_steps, lr, batch_size, lora, qlora) -> dict:
    """The shared training flags as dotted config keys (None = not given on the command line)."""
    return {"model": model, "data": data, "out": out, "seed": seed, "epochs": epochs, "max_steps": max_steps,
            "learning_rate": lr, "batch_size": batch_size, "lora.enabled": lora, "qlora": qlora}


def launch_flags(launcher, num_processes, deepspeed, fsdp) -> dict:
    """The --launcher/--num-processes/--deepspeed/--fsdp flags as LaunchSettings keys (None = not given)."""
    return {"launcher": launcher, "num_processes": num_processes, "deepspeed": deepspeed, "fsdp": fsdp}


def run_training_command(stage: str, *, launch: dict, flags: dict, config_file, sets, print_config: bool,
                         store: str | None) -> None:
    """`run_stage_command`, or with --launcher the same stage re-run on N processes (llmpost.pipeline.launch)."""
    import os
    import sys

    from llmpost.pipeline.launch.settings import launch_settings
    from llmpost.ranks import is_main_process

    settings = launch_settings(launch, source="launcher flags")
    if not settings.active or print_config:
        if not is_main_process():  # launched by torchrun/accelerate: rank 0 alone reports the outcome
            sys.stdout = open(os.devnull, "w")  # for the rest of this process
        run_stage_command(stage, flags=flags, config_file=config_file, sets=sets, print_config=print_config,
                          store=store)
        return
    from llmpost.artifacts.store import Store
    from llmpost.pipeline.launch.relaunch import launch_stage

    cfg = resolve_stage_config(stage, flags=flags, config_file=config_file, sets=sets)
    launch_stage(stage, cfg, Store.default(store), settings, console=console)  # rank 0 prints the outcome


def register(app: typer.Typer) -> None:
    @app.command(
        help=f"Supervised fine-tuning on conversations (TRL SFTTrainer). {PRECEDENCE}",
        epilog="Example: llmpost sft --model tiny --data builtin:arith-sft --out sft --set max_steps=50",
    )
    def sft(model: ModelOpt = None, data: DataOpt = None, out: OutOpt = None, seed: SeedOpt = None,
            epochs: EpochsOpt = None, max_steps: StepsOpt = None, lr: LrOpt = None, batch_size: BatchOpt = None,
            lora: LoraOpt = None, qlora: QloraOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
            print_config: PrintConfigOpt = False, store: StoreOpt = None, launcher: LauncherOpt = None,
            num_processes: NumProcessesOpt = None, deepspeed: DeepspeedOpt = None, fsdp: FsdpOpt = None):
        flags = common_flags(model, data, out, seed, epochs, max_steps, lr, batch_size, lora, qlora)
        run_training_command("sft", launch=launch_flags(launcher, num_processes, deepspeed, fsdp), flags=flags,
                             config_file=config, sets=set_, print_config=print_config, store=store)
