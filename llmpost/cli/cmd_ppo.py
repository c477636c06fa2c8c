"""`llmpost ppo`: actor-critic PPO against a reward model or any reward (llmpost.rl)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmpost.cli.options import PromptsOpt, VllmModeOpt, VllmOpt
from llmpost.cli.training_command import TrainingOptions, training_command

PolicyOpt = Annotated[str | None, typer.Option(
    "--policy", "--model", "-m", help="The policy to improve: an artifact ref (e.g. an SFT), 'tiny', a local dir or a hub id.")]
RewardOpt = Annotated[list[str] | None, typer.Option(
    "--reward", "-r",
    help="NAME[=WEIGHT], repeatable, summed: rm:REF (a `llmpost rm` artifact), prm:REF[:agg=min|prod|last|mean] "
         "(a `llmpost prm` artifact), exact_match, math, format[:REGEX], length[:min=N,max=M], code_exec, "
         "judge:SPEC, path/file.py:fn, module:fn.")]
ProcessRewardsOpt = Annotated[str | None, typer.Option(
    "--process-rewards",
    help="aggregate: a prm:REF reward is one score at the end; dense: each step's share lands on the token "
         "that ends the step (needs exactly one prm: reward).")]
BetaOpt = Annotated[float | None, typer.Option("--beta", help="KL penalty per token towards the reference (kl.coef).")]
TargetKlOpt = Annotated[float | None, typer.Option(
    "--kl-target", help="Adapt beta so the per-response KL tracks this (kl.target); default: fixed beta.")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", help="Sampling temperature of the rollouts.")]
NewTokensOpt = Annotated[int | None, typer.Option("--max-new-tokens", help="Longest sampled response in tokens.")]
PPOEpochsOpt = Annotated[int | None, typer.Option("--ppo-epochs", help="Optimisation passes over each rollout batch.")]


def register(app: typer.Typer) -> None:
    @app.command(epilog="Example: llmpost ppo --policy sft --reward rm:rm --prompts builtin:arith-prompts --out ppo "
                        "--set max_steps=50")
    @training_command(model=PolicyOpt, data=PromptsOpt)
    def ppo(opts: TrainingOptions, reward: RewardOpt = None, beta: BetaOpt = None, kl_target: TargetKlOpt = None,
            temperature: TemperatureOpt = None, max_new_tokens: NewTokensOpt = None, ppo_epochs: PPOEpochsOpt = None,
            vllm: VllmOpt = None, vllm_mode: VllmModeOpt = None, process_rewards: ProcessRewardsOpt = None):
        """Actor-critic PPO (llmpost's own, no TRL PPOTrainer): sample responses, score them with a reward
        model or other rewards, penalise KL to the starting policy per token, and update policy and value
        head with clipped losses and GAE. LoRA/QLoRA keep one base model in memory."""
        opts.run({"rewards": reward or None, "kl.coef": beta, "kl.target": kl_target,
                  "rollout.temperature": temperature, "rollout.max_new_tokens": max_new_tokens,
                  "ppo.epochs": ppo_epochs, "vllm": vllm, "vllm_mode": vllm_mode,
                  "process_rewards": process_rewards})
