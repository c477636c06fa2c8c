"""Shared `Annotated` options, so every stage command spells its flags the same way."""

from __future__ import annotations

from copy import copy
from pathlib import Path
from typing import Annotated

import typer

# A paragraph of its own, so command listings show only the first one.
PRECEDENCE = (
    "\n\nConfig precedence, lowest to highest: stage defaults < recipe defaults < recipe stage block "
    "< --config FILE < flags < --set KEY=VALUE."
)

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Base model: 'tiny', an artifact ref (NAME, NAME@vN), a local dir or a hub id.")]
DataOpt = Annotated[str | None, typer.Option("--data", "-d", help="Training data: a file (.jsonl/.json/.csv/.parquet), a saved dataset dir, builtin:NAME or a hub id.")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="Artifact name; each run writes a new version NAME/vN.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed.")]
EpochsOpt = Annotated[float | None, typer.Option("--epochs", help="Passes over the training data.")]
StepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Stop after N optimizer steps (-1: use epochs).")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", "-b", help="Examples per device per step.")]
LoraOpt = Annotated[bool | None, typer.Option("--lora/--no-lora", help="Train a LoRA adapter instead of all weights.")]
QloraOpt = Annotated[bool | None, typer.Option("--qlora/--no-qlora", help="4-bit NF4 base (bitsandbytes) + LoRA.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file with this stage's settings.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override any key: --set max_steps=3 --set lora.r=8 (repeatable).")]
PrintConfigOpt = Annotated[bool, typer.Option("--print-config", help="Print the resolved config as YAML and exit.")]
StoreOpt = Annotated[str | None, typer.Option("--store", envvar="LLMPOST_STORE", help="Artifact store directory (default ./artifacts).")]
ReportToOpt = Annotated[list[str] | None, typer.Option("--report-to", metavar="TRACKER", help="Also send metrics.jsonl's rows to an experiment tracker, in a run named NAME/vN: tensorboard (event files in the artifact), trackio, wandb, mlflow; none = off (repeatable).")]
LrOpt = Annotated[float | None, typer.Option("--learning-rate", "--lr", help="Peak learning rate.")]


def learning_rate_option(stage: str):
    """`LrOpt` for `stage`: its help is the stage's `learning_rate` description, which states its defaults."""
    from llmpost.stages import load_stage  # the config models only: no torch

    described = load_stage(stage).Config.model_fields["learning_rate"].description
    option = copy(LrOpt.__metadata__[0])
    option.help = f"{described[0].upper()}{described[1:]}."
    return Annotated[float | None, option]


# Scaling out: re-run the command on several processes (see llmpost/pipeline/launch/).
LAUNCH_PANEL = "Multi-process (DDP / DeepSpeed / FSDP)"
LauncherOpt = Annotated[str | None, typer.Option("--launcher", rich_help_panel=LAUNCH_PANEL, help="Re-run this command under 'torchrun' or 'accelerate' (launch); only rank 0 writes the artifact.")]
NumProcessesOpt = Annotated[int | None, typer.Option("--num-processes", min=1, rich_help_panel=LAUNCH_PANEL, help="Processes for --launcher: one per GPU; on CPU, DDP over gloo.")]
DeepspeedOpt = Annotated[str | None, typer.Option("--deepspeed", rich_help_panel=LAUNCH_PANEL, help="DeepSpeed ZeRO under --launcher: zero2, zero3 or a DeepSpeed JSON file (CUDA GPUs).")]
FsdpOpt = Annotated[bool | None, typer.Option("--fsdp", rich_help_panel=LAUNCH_PANEL, help="Shard the model with PyTorch FSDP under --launcher (CUDA GPUs).")]

# The RL commands (grpo, ppo) train on prompts, sampling their answers, with vLLM where it is installed on a CUDA machine.
PromptsOpt = Annotated[str | None, typer.Option(
    "--prompts", "--data", "-d",
    help="Prompts (+ the columns rewards read: answer, tests, ...): a file, a saved dataset dir, builtin:NAME or a hub id.")]
VllmOpt = Annotated[bool | None, typer.Option("--vllm/--no-vllm", help="Sample with vLLM (needs vllm and a CUDA GPU).")]
VllmModeOpt = Annotated[str | None, typer.Option("--vllm-mode", help="colocate (in this process) or server (`trl vllm-serve`).")]
