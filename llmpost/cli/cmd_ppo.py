"""`llmpost ppo`: actor-critic PPO against a reward model or any reward (llmpost.rl)."""

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
    NumProcessesOpt,
    OutOpt,
    PrintConfigOpt,
    QloraOpt,
    SeedOpt,
    SetOpt,
    StepsOpt,
    StoreOpt,
    VllmModeOpt,
    VllmOpt,
)
from llmpost.cli.train_cmds import common_flags, launch_flags, run_training_command

PolicyOpt = Annotated[str | None, typer.Option(
    "--policy", "--model", "-m", help="The policy to improve: an artifact ref (e.g. an SFT), 'tiny', a local dir or a hub id.")]
PromptsOpt = Annotated[str | None, typer.Option(
    "--prompts", "--data", "-d",
    help="Prompts (+ the columns rewards read: answer, tests, ...): a file, a saved dataset dir, builtin:NAME or a hub id.")]
RewardOpt = Annotated[list[str] | None, typer.Option(
    "--reward", "-r",
    help="NAME[=WEIGHT], repeatable, summed: rm:REF (a `llmpost rm` artifact), exact_match, math, format[:REGEX], "
         "length[:min=N,max=M], code_exec, judge:SPEC, path/file.py:fn, module:fn.")]
BetaOpt = Annotated[float | None, typer.Option("--beta", help="KL penalty per token towards the reference (kl.coef).")]
TargetKlOpt = Annotated[float | None, typer.Option(
    "--kl-target", help="Adapt beta so the per-response KL tracks this (kl.target); default: fixed beta.")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", help="Sampling temperature of the rollouts.")]
NewTokensOpt = Annotated[int | None, typer.Option("--max-new-tokens", help="Longest sampled response in tokens.")]
PPOEpochsOpt = Annotated[int | None, typer.Option("--ppo-epochs", help="Optimisation passes over each rollout batch.")]


def register(app: typer.Typer) -> None:
    @app.command(
        help="Actor-critic PPO (llmpost's own, no TRL PPOTrainer): sample responses, score them with a reward "
             "model or other rewards, penalise KL to the starting policy per token, and update policy and value "
             f"head with clipped losses and GAE. LoRA/QLoRA keep one base model in memory. {PRECEDENCE}",
        epilog="Example: llmpost ppo --policy sft --reward rm:rm --prompts builtin:arith-prompts --out ppo "
               "--set max_steps=50",
    )
    def ppo(policy: PolicyOpt = None, prompts: PromptsOpt = None, reward: RewardOpt = None, out: OutOpt = None,
            beta: BetaOpt = None, kl_target: TargetKlOpt = None, temperature: TemperatureOpt = None,
            max_new_tokens: NewTokensOpt = None, ppo_epochs: PPOEpochsOpt = None, vllm: VllmOpt = None,
            vllm_mode: VllmModeOpt = None, seed: SeedOpt = None, epochs: EpochsOpt = None,
            max_steps: StepsOpt = None, lr: LrOpt = None, batch_size: BatchOpt = None, lora: LoraOpt = None,
            qlora: QloraOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
            print_config: PrintConfigOpt = False, store: StoreOpt = None, launcher: LauncherOpt = None,
            num_processes: NumProcessesOpt = None, deepspeed: DeepspeedOpt = None, fsdp: FsdpOpt = None):
        flags = common_flags(policy, prompts, out, seed, epochs, max_steps, lr, batch_size, lora, qlora)
        flags.update({"rewards": reward or None, "kl.coef": beta, "kl.target": kl_target,
                      "rollout.temperature": temperature, "rollout.max_new_tokens": max_new_tokens,
                      "ppo.epochs": ppo_epochs, "vllm": vllm, "vllm_mode": vllm_mode})
        run_training_command("ppo", launch=launch_flags(launcher, num_processes, deepspeed, fsdp), flags=flags,
                             config_file=config, sets=set_, print_config=print_config, store=store)
