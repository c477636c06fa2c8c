"""What every training command (sft, rm, dpo, kto, grpo, ppo) shares: its options, declared once, and how it runs.

    @app.command(epilog="Example: llmpost dpo ...")
    @training_command(data=PrefsOpt)
    def dpo(opts: TrainingOptions, beta: BetaOpt = None):
        '''Direct preference optimisation ...'''
        opts.run({"beta": beta})

`training_command` puts the shared options (the fields of `TrainingOptions`) into the
command's signature, where typer reads them, and hands them to the command gathered in
one `TrainingOptions`; the docstring, with the config precedence, is the command's help.
`opts.run()` resolves the stage's config from the options and the command's own flags
(config key -> value), and runs the stage: in this process, or with --launcher on several.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

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
    ReportToOpt,
    SeedOpt,
    SetOpt,
    StepsOpt,
    StoreOpt,
    learning_rate_option,
)
from llmpost.cli.stage_runner import console, resolve_stage_config, run_stage_command


@dataclass
class TrainingOptions:
    """The options of every training command, in --help order; a command's own go after --out."""

    model: ModelOpt = None
    data: DataOpt = None
    out: OutOpt = None
    seed: SeedOpt = None
    epochs: EpochsOpt = None
    max_steps: StepsOpt = None
    lr: LrOpt = None
    batch_size: BatchOpt = None
    lora: LoraOpt = None
    qlora: QloraOpt = None
    report_to: ReportToOpt = None
    config: ConfigOpt = None
    set_: SetOpt = None
    print_config: PrintConfigOpt = False
    store: StoreOpt = None
    launcher: LauncherOpt = None
    num_processes: NumProcessesOpt = None
    deepspeed: DeepspeedOpt = None
    fsdp: FsdpOpt = None
    stage: str = field(default="", init=False)  # the command's name, set by `training_command`

    def config_flags(self) -> dict[str, Any]:
        """The shared flags as dotted config keys (None = not given on the command line)."""
        return {"model": self.model, "data": self.data, "out": self.out, "seed": self.seed, "epochs": self.epochs,
                "max_steps": self.max_steps, "learning_rate": self.lr, "batch_size": self.batch_size,
                "lora.enabled": self.lora, "qlora": self.qlora, "report_to": self.report_to}

    def launch_flags(self) -> dict[str, Any]:
        """--launcher/--num-processes/--deepspeed/--fsdp as LaunchSettings keys (None = not given)."""
        return {"launcher": self.launcher, "num_processes": self.num_processes, "deepspeed": self.deepspeed,
                "fsdp": self.fsdp}

    def run(self, stage_flags: dict[str, Any] | None = None) -> None:
        """Run the stage with these options and the command's own `stage_flags` (dotted config keys).

        With --launcher the same stage re-runs on N processes (llmpost.pipeline.launch).
        """
        import os
        import sys

        from llmpost.pipeline.launch.settings import launch_settings
        from llmpost.ranks import is_main_process

        flags = {**self.config_flags(), **(stage_flags or {})}
        settings = launch_settings(self.launch_flags(), source="launcher flags")
        if not settings.active or self.print_config:
            if not is_main_process():  # launched by torchrun/accelerate: rank 0 alone reports the outcome
                sys.stdout = open(os.devnull, "w")  # for the rest of this process
            run_stage_command(self.stage, flags=flags, config_file=self.config, sets=self.set_,
                              print_config=self.print_config, store=self.store)
            return
        from llmpost.artifacts.store import Store
        from llmpost.pipeline.launch.relaunch import launch_stage

        cfg = resolve_stage_config(self.stage, flags=flags, config_file=self.config, sets=self.set_)
        launch_stage(self.stage, cfg, Store.default(self.store), settings, console=console)  # rank 0 prints the outcome


OPTIONS = [f for f in fields(TrainingOptions) if f.init]
LEADING = 3  # --model, --data, --out: what a command reads and writes comes before its own options


def training_command(**own_spelling: Any) -> Callable:
    """Give a training command the shared options and its help; the command's name is its stage.

    The command takes `opts: TrainingOptions` first, then its own options. `own_spelling`
    gives a shared option the command's own `Annotated` declaration, e.g. ppo's
    `model=PolicyOpt` (--policy, with --model as an alias); the config key stays the same.
    """
    def decorate(command: Callable) -> Callable:
        stage = command.__name__
        own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]  # after `opts`
        shared = shared_parameters(stage, own_spelling)
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                      for p in [*shared[:LEADING], *own, *shared[LEADING:]]]

        @functools.wraps(command)
        def with_options(**values: Any) -> Any:
            opts = TrainingOptions(**{option.name: values.pop(option.name) for option in OPTIONS})
            opts.stage = stage
            return command(opts, **values)

        with_options.__doc__ = help_text(command)
        # typer reads a command's options from its signature (inspect.signature honours __signature__)
        with_options.__signature__ = inspect.Signature(parameters)
        with_options.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_options

    return decorate


def shared_parameters(stage: str, own_spelling: dict[str, Any]) -> list[inspect.Parameter]:
    """`TrainingOptions`' fields as typer parameters for `stage`'s command."""
    declared = typing.get_type_hints(TrainingOptions, include_extras=True)
    declared |= {"lr": learning_rate_option(stage), **own_spelling}
    return [inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=option.default,
                              annotation=declared[option.name]) for option in OPTIONS]


def help_text(command: Callable) -> str:
    """The command's docstring, each paragraph on one line (as `llmpost --help` lists it), then the precedence."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs) + PRECEDENCE
