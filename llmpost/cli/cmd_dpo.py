"""`llmpost dpo`: direct preference optimisation (flags -> config keys -> the dpo stage)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmpost.cli.training_command import TrainingOptions, training_command

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
    @app.command(epilog="Example: llmpost dpo --model sft --data builtin:arith-pairs --out dpo --beta 0.1 "
                        "--set max_steps=100")
    @training_command(data=PrefsOpt)
    def dpo(opts: TrainingOptions, beta: BetaOpt = None, loss: LossOpt = None, expand: ExpandOpt = None,
            precompute_ref: PrecomputeOpt = None):
        """Direct preference optimisation on chosen/rejected pairs (TRL DPOTrainer). The reference is the
        input model: with --lora/--qlora the adapter disabled, no second copy. eval.json reports held-out
        implicit-reward accuracy and margin and exact-match before/after."""
        opts.run({"beta": beta, "loss": loss, "expand": expand, "precompute_ref": precompute_ref})
