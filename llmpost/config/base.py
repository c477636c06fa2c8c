"""The settings every training stage shares.

Each stage's config subclasses `TrainConfig`, so `--set max_steps=3` is a smoke
run of any stage. Every field has a default and a one-line description; unknown
keys are errors (`extra="forbid"`), never silently ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSettings(Strict):
    enabled: bool = Field(False, description="train a LoRA adapter instead of all weights (--lora)")
    r: int = Field(16, ge=1, description="LoRA rank; higher = more capacity and memory")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the LoRA path")
    target_modules: list[str] | str = Field(
        "all-linear", description="modules to adapt: a list of names or 'all-linear'"
    )


class EvalSettings(Strict):
    enabled: bool = Field(True, description="run the held-out evaluation before and after training")
    data: str | None = Field(
        None, description="held-out data with prompt+answer; default: the built-in test split"
    )
    max_samples: int = Field(200, ge=1, description="evaluate on at most this many held-out rows")
    max_new_tokens: int = Field(32, ge=1, description="generation budget per held-out answer")
    batch_size: int = Field(64, ge=1, description="prompts generated at once during evaluation")


class TrainConfig(Strict):
    """Keys common to all training stages."""

    model: str = Field("tiny", description="base: 'tiny', an artifact ref (NAME, NAME@vN), a local path or a hub id")
    data: str | None = Field(None, description="training data: a file, a saved dataset dir, builtin:NAME or a hub id")
    out: str | None = Field(None, description="artifact name to write (a new version NAME/vN); default: the stage name")
    seed: int = Field(0, description="random seed for data order, initialisation and sampling")
    epochs: float = Field(1.0, gt=0, description="passes over the training data (ignored when max_steps > 0)")
    max_steps: int = Field(-1, description="stop after this many optimizer steps; -1 = use epochs")
    learning_rate: float | None = Field(
        None, gt=0, description="peak learning rate; default: 3e-3 for tiny, 2e-4 with LoRA, 2e-5 full fine-tuning"
    )
    batch_size: int = Field(8, ge=1, description="examples per device per step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    max_length: int = Field(512, ge=8, description="truncate tokenized examples to this many tokens")
    warmup_ratio: float = Field(0.0, ge=0, le=1, description="fraction of steps spent warming up the learning rate")
    logging_steps: int = Field(5, ge=1, description="log metrics every N optimizer steps")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter settings (--lora)")
    qlora: bool = Field(False, description="load the base in 4-bit NF4 (bitsandbytes) and train LoRA on top (--qlora)")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory on large models")
    bf16: bool | None = Field(None, description="bfloat16 mixed precision; default: on when the GPU supports it")
    trust_remote_code: bool = Field(False, description="allow model repos to run their own code")
    eval: EvalSettings = Field(default_factory=EvalSettings, description="held-out evaluation settings")
    trainer: dict[str, Any] = Field(
        default_factory=dict, description="extra TRL/transformers trainer arguments, passed through and validated"
    )

    @property
    def uses_lora(self) -> bool:
        return self.lora.enabled or self.qlora
