"""`llmpost grpo`: GRPO with verifiable rewards, reward models, judges or your own functions."""

from __future__ import annotations

from typing import Annotated

import typer

from llmpost.cli.options import PromptsOpt, VllmModeOpt, VllmOpt
from llmpost.cli.training_command import TrainingOptions, training_command

RewardOpt = Annotated[list[str] | None, typer.Option(
    "--reward", "-r",
    help="NAME[=WEIGHT], repeatable: exact_match, math, format[:REGEX], length[:min=N,max=M], "
         "code_exec[:cpu=2,wall=5,memory_mb=512], rm:REF, prm:REF[:agg=min|prod|last|mean], judge:SPEC, "
         "path/file.py:fn, module:fn.")]
GenerationsOpt = Annotated[int | None, typer.Option("--num-generations", "-G", help="Completions sampled per prompt.")]
BetaOpt = Annotated[float | None, typer.Option("--beta", help="KL strength towards the starting model (0: no reference model).")]
EpsilonOpt = Annotated[float | None, typer.Option("--epsilon", help="Clip range of the policy ratio.")]
CompletionOpt = Annotated[int | None, typer.Option("--max-completion-length", help="Longest completion in tokens.")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", help="Sampling temperature of the completions.")]
LossOpt = Annotated[str | None, typer.Option("--loss-type", help="dapo, grpo, dr_grpo, bnpo, cispo, sapo, luspo or vespo.")]
SystemOpt = Annotated[str | None, typer.Option("--system-prompt", help="System message put before every prompt.")]


def register(app: typer.Typer) -> None:
    @app.command(epilog="Example: llmpost grpo --model sft --prompts builtin:arith-prompts --reward exact_match "
                        "--out grpo --set max_steps=20")
    @training_command(data=PromptsOpt)
    def grpo(opts: TrainingOptions, reward: RewardOpt = None, num_generations: GenerationsOpt = None,
             beta: BetaOpt = None, epsilon: EpsilonOpt = None, max_completion_length: CompletionOpt = None,
             temperature: TemperatureOpt = None, loss_type: LossOpt = None, system_prompt: SystemOpt = None,
             vllm: VllmOpt = None, vllm_mode: VllmModeOpt = None):
        """Group Relative Policy Optimization (TRL GRPOTrainer): sample a group of completions per prompt,
        score them with rewards, reinforce the better ones. Rewards are summed with their weights; each
        one's mean is logged separately."""
        opts.run({"rewards": reward or None, "num_generations": num_generations, "beta": beta, "epsilon": epsilon,
                  "max_completion_length": max_completion_length, "temperature": temperature,
                  "loss_type": loss_type, "system_prompt": system_prompt, "vllm": vllm, "vllm_mode": vllm_mode})
