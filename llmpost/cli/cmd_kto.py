"""`llmpost kto`: Kahneman-Tversky optimisation (flags -> config keys -> the kto stage)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmpost.cli.training_command import TrainingOptions, training_command

FeedbackOpt = Annotated[str | None, typer.Option(
    "--data", "-d", help="Feedback: prompt+completion+label rows (label true/false), messages+label, preference "
                         "pairs or rankings (best response desirable, the rest not), or builtin:arith-feedback.")]
BetaOpt = Annotated[float | None, typer.Option("--beta", help="KL strength: higher stays nearer the reference model.")]
LossOpt = Annotated[str | None, typer.Option("--loss-type", help="kto or apo_zero_unpaired.")]
DesirableOpt = Annotated[float | None, typer.Option(
    "--desirable-weight", help="Loss weight of a desirable row (raise it when desirable rows are fewer).")]
UndesirableOpt = Annotated[float | None, typer.Option(
    "--undesirable-weight", help="Loss weight of an undesirable row (lower it when they outnumber desirable ones).")]
PrecomputeOpt = Annotated[bool | None, typer.Option(
    "--precompute-ref/--no-precompute-ref",
    help="Compute reference log-probs once before training instead of keeping a reference model.")]


def register(app: typer.Typer) -> None:
    @app.command(epilog="Example: llmpost kto --model sft --data builtin:arith-feedback --out kto --beta 1.0 "
                        "--max-steps 300")
    @training_command(data=FeedbackOpt)
    def kto(opts: TrainingOptions, beta: BetaOpt = None, loss_type: LossOpt = None,
            desirable_weight: DesirableOpt = None, undesirable_weight: UndesirableOpt = None,
            precompute_ref: PrecomputeOpt = None):
        """Kahneman-Tversky optimisation on single responses marked desirable or not: thumbs up/down, no
        pairs needed (TRL KTOTrainer). The reference is the input model: with --lora/--qlora the adapter
        disabled, no second copy. eval.json reports held-out implicit rewards by label and exact-match
        before/after."""
        opts.run({"beta": beta, "loss_type": loss_type, "desirable_weight": desirable_weight,
                  "undesirable_weight": undesirable_weight, "precompute_ref": precompute_ref})
