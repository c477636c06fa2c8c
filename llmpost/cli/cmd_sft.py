"""`llmpost sft`: supervised fine-tuning on conversations (flags -> config keys -> the sft stage)."""

from __future__ import annotations

import typer

from llmpost.cli.training_command import TrainingOptions, training_command


def register(app: typer.Typer) -> None:
    @app.command(epilog="Example: llmpost sft --model tiny --data builtin:arith-sft --out sft --set max_steps=50")
    @training_command()
    def sft(opts: TrainingOptions):
        """Supervised fine-tuning on conversations (TRL SFTTrainer)."""
        opts.run()
