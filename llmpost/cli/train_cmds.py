"""`llmpost sft` (and the pattern every training stage command follows)."""

from __future__ import annotations

import typer

from llmpost.cli.options import (
    PRECEDENCE, BatchOpt, ConfigOpt, DataOpt, EpochsOpt, LoraOpt, LrOpt, ModelOpt, OutOpt, PrintConfigOpt,
    QloraOpt, SeedOpt, SetOpt, StepsOpt, StoreOpt,
)
from llmpost.cli.stage_runner import run_stage_command


def common_flags(model, data, out, seed, epochs, max_steps, lr, batch_size, lora, qlora) -> dict:
    """The shared training flags as dotted config keys (None = not given on the command line)."""
    return {"model": model, "data": data, "out": out, "seed": seed, "epochs": epochs, "max_steps": max_steps,
            "learning_rate": lr, "batch_size": batch_size, "lora.enabled": lora, "qlora": qlora}


def register(app: typer.Typer) -> None:
    @app.command(
        help=f"Supervised fine-tuning on conversations (TRL SFTTrainer). {PRECEDENCE}",
        epilog="Example: llmpost sft --model tiny --data builtin:arith-sft --out sft --set max_steps=50",
    )
    def sft(model: ModelOpt = None, data: DataOpt = None, out: OutOpt = None, seed: SeedOpt = None,
            epochs: EpochsOpt = None, max_steps: StepsOpt = None, lr: LrOpt = None, batch_size: BatchOpt = None,
            lora: LoraOpt = None, qlora: QloraOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
            print_config: PrintConfigOpt = False, store: StoreOpt = None):
        flags = common_flags(model, data, out, seed, epochs, max_steps, lr, batch_size, lora, qlora)
        run_stage_command("sft", flags=flags, config_file=config, sets=set_, print_config=print_config, store=store)
