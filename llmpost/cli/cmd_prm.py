"""`llmpost prm`: train a process reward model (a score for every step) from step-labelled solutions."""

from __future__ import annotations

from typing import Annotated

import typer

from llmpost.cli.training_command import TrainingOptions, training_command

StepsDataOpt = Annotated[str | None, typer.Option(
    "--data", "-d", help="Step-labelled solutions: prompt + completions (steps) + labels, Math-Shepherd input + label, "
                         "PRM800K rows, or builtin:arith-steps.")]
EvalDataOpt = Annotated[str | None, typer.Option(
    "--eval-data", help="Held-out step-labelled solutions for eval.json (default builtin:arith-steps:test).")]


def register(app: typer.Typer) -> None:
    @app.command(epilog="Example: llmpost prm --model sft --data builtin:arith-steps --out prm --max-steps 300")
    @training_command(data=StepsDataOpt)
    def prm(opts: TrainingOptions, eval_data: EvalDataOpt = None):
        """Train a process reward model: a score in [0, 1] at the end of every step of a solution (steps are lines).
        eval.json reports held-out step accuracy, first-error localisation and solution accuracy, before and after."""
        opts.run({"eval.data": eval_data})
