"""`llmpost dpo`: direct preference optimisation (flags -> config keys -> the dpo stage)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmpost.cli.options import (
    PRECEDENCE,
    BatchOpt,
    ConfigOpt,
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
from llmpost.cli.train_cmds import common_flags, launch_flags, run_training_command

PrefsOpt = Annotated[str | None, typer.Option(
    "--data", "-d", help="Preferences: pairs (prompt/chosen/rejected, HH-RLHF), rankings, UltraFeedback rows, "
                         "a `llmpost judge` artifact name, or builtin:arith-pairs.")]
BetaOpt = Annotated[float | None, typer.Option("--beta", help="KL strength: higher stays nearer the reference model.")]
LossOpt = Annotated[str | None, typer.Option(
    "--loss", help="DPO loss type(s), comma separated: sigmoid, ipo, hinge, robust, bco_pair, apo_zero, sft, ...")]
ExpandOpt = Annotated[str | None, typer.Option(
    "--expand", help="Rankings to pairs: 'all' ordered pairs or 'best_vs_rest'.")]
PrecomputeOpt = Annotated[bool | None, typer.Option(
    "--precompute-ref/--no-precompute-ref",
    help="Compute reference log-probs once before training instead of keeping a reference model.")]


def register(app: typer.Typer) -> None:
    @app.command(
        help="Direct preference optimisation on chosen/rejected pairs (TRL DPOTrainer). The reference is the "
             "input model: with --lora/--qlora the adapter disabled, no second copy. eval.json reports held-out "
             f"implicit-reward accuracy and margin and exact-match before/after. {PRECEDENCE}",
        epilog="Example: llmpost dpo --model sft --data builtin:arith-pairs --out dpo --beta 0.1 --set max_steps=100",
    )
    def dpo(model: ModelOpt = None, data: PrefsOpt = None, out: OutOpt = None, seed: SeedOpt = None,
            epochs: EpochsOpt = None, max_steps: StepsOpt = None, lr: LrOpt = None, batch_size: BatchOpt = None,
            lora: LoraOpt = None, qlora: QloraOpt = None, beta: BetaOpt = None, loss: LossOpt = None,
            expand: ExpandOpt = None, precompute_ref: PrecomputeOpt = None, config: ConfigOpt = None,
            set_: SetOpt = None, print_config: PrintConfigOpt = False, store: StoreOpt = None,
            launcher: LauncherOpt = None, num_processes: NumProcessesOpt = None, deepspeed: DeepspeedOpt = None,
            fsdp: FsdpOpt = None):
        flags = common_flags(model, data, out, seed, epochs, max_steps, lr, batch_size, lora, qlora)
        flags |= {"beta": beta, "loss": loss, "expand": expand, "precompute_ref": precompute_ref}
        run_training_command("dpo", launch=launch_flags(launcher, num_processes, deepspeed, fsdp), flags=flags,
                             config_file=config, sets=set_, print_config=print_config, store=store)
