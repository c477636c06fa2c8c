"""The settings every training stage shares.

Each stage's config subclasses `TrainConfig`, so `--set max_steps=3` is a smoke
run of any stage. Every field has a default and a one-line description; unknown
keys are errors (`extra="forbid"`), never silently ignored, and so is a `trainer:`
argument that one of llmpost's own keys sets (`TrainConfig.trainer_args_from_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def refused_keys(cls, data: dict[str, Any]) -> list[str]:
        """Keys in `data` that validate but that llmpost refuses, as `dotted.path: why` (`resolve()` lists them)."""
        return []


# The flag that sets a config key, where one does, so that an error can name both spellings.
FLAGS = {
    "epochs": "--epochs", "max_steps": "--max-steps", "learning_rate": "--lr", "batch_size": "--batch-size",
    "seed": "--seed", "beta": "--beta", "loss": "--loss", "precompute_ref": "--precompute-ref",
    "rewards": "--reward", "num_generations": "--num-generations", "epsilon": "--epsilon",
    "max_completion_length": "--max-completion-length", "temperature": "--temperature", "loss_type": "--loss-type",
    "vllm": "--vllm", "vllm_mode": "--vllm-mode", "report_to": "--report-to",
}


# Experiment trackers a stage can report its metrics.jsonl rows to (reporting/tracking.py); "none" = off.
TRACKERS = ("none", "tensorboard", "trackio", "wandb", "mlflow")


def _tracker_list(value: Any) -> Any:
    """`report_to: wandb` and `--set report_to=wandb,tensorboard` as lists, as TRL/transformers accept them."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _none_alone(value: list[str]) -> list[str]:
    """Duplicates dropped; "none" only on its own, where it means what [] means."""
    value = list(dict.fromkeys(value))
    if "none" in value and len(value) > 1:
        raise ValueError("`none` turns tracking off and cannot be combined with "
                         + ", ".join(v for v in value if v != "none"))
    return value


ReportTo = Annotated[list[Literal[TRACKERS]], BeforeValidator(_tracker_list), AfterValidator(_none_alone)]


def report_to_field():
    """The `report_to` key, the same on every training stage and the judge."""
    return Field(default_factory=list,
                 description="experiment trackers that also get every metrics.jsonl row, in a run named NAME/vN: "
                             "tensorboard (event files in the artifact), trackio, wandb, mlflow (--report-to); "
                             "[] or [none] = off")


class LoraSettings(Strict):
    enabled: bool = Field(False, description="train a LoRA adapter instead of all weights (--lora)")
    r: int = Field(16, ge=1, description="LoRA rank; higher = more capacity and memory")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the LoRA path")
    target_modules: list[str] | str = Field(
        "all-linear", description="modules to adapt: a list of names or 'all-linear'"
    )


# Generation budgets of held-out answers when `max_new_tokens` is not set. Tiny's answers
# ("7+5=12\n#### 12") take about ten tokens. A chat model works its answer out in sentences
# first: SmolLM2-135M-Instruct on the built-in task often passes 96 tokens, and an answer cut
# short is scored wrong whatever it was going to say. Generation stops at the end of turn, so
# the budget only costs time on answers that would run on anyway.
TINY_EVAL_TOKENS = 32
MODEL_EVAL_TOKENS = 256


def eval_budget(max_new_tokens: int | None, is_tiny: bool, tiny: int = TINY_EVAL_TOKENS) -> int:
    """The configured generation budget, or the default for the model (`tiny` on tiny-based models)."""
    if max_new_tokens is not None:
        return max_new_tokens
    return tiny if is_tiny else MODEL_EVAL_TOKENS


class EvalSettings(Strict):
    enabled: bool = Field(True, description="run the held-out evaluation before and after training")
    data: str | None = Field(
        None, description="held-out data with prompt+answer; default: the built-in test split"
    )
    max_samples: int = Field(1000, ge=1, description="evaluate on at most this many held-out rows")
    max_new_tokens: int | None = Field(
        None, ge=1, description=f"generation budget per held-out answer; default {TINY_EVAL_TOKENS} on tiny-based "
                                f"models, {MODEL_EVAL_TOKENS} on others"
    )
    batch_size: int | None = Field(
        None, ge=1, description="prompts generated at once during evaluation; default 64, or on a CPU as many as "
                                "fit 2 GiB of KV cache (at most 256)"
    )


@dataclass(frozen=True)
class LearningRates:
    """A stage's learning rates when `learning_rate` is not set: one per kind of run."""

    tiny: float  # the built-in tiny model, tuned on the built-in task
    lora: float  # any other model, training a LoRA adapter (--lora, --qlora)
    full: float  # any other model, training all weights

    def __str__(self) -> str:
        return f"{_short(self.tiny)} for tiny, {_short(self.lora)} with LoRA, {_short(self.full)} full fine-tuning"


def _short(value: float) -> str:
    """3e-3, not 0.003 or 3e-03: learning rates as people write them."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def learning_rate_field(defaults: LearningRates, what: str = "peak learning rate"):
    """The `learning_rate` field, its description stating the stage's `defaults`."""
    return Field(None, gt=0, description=f"{what}; default: {defaults}")


def builtin_test_split(ref: str) -> str | None:
    """The test split of a built-in dataset (`builtin:arith-prompts` -> `builtin:arith-prompts:test`), else None."""
    if not ref.startswith("builtin:"):
        return None
    return f"builtin:{ref.removeprefix('builtin:').split(':')[0]}:test"


def builtin_prompts(ref: str | None) -> str | None:
    """The held-out prompts of a built-in task, for any of its datasets (`builtin:arith-steps-sft` ->
    `builtin:arith-steps-prompts:test`); None for other data."""
    if not ref or not ref.startswith("builtin:"):
        return None
    name = ref.removeprefix("builtin:").split(":")[0]
    task = "arith-steps" if name.startswith("arith-steps") else "arith"
    return f"builtin:{task}-prompts:test"


def learning_rate(cfg: TrainConfig, is_tiny: bool) -> float:
    """The configured learning rate, or the stage's default (`default_learning_rates`) for the model and method."""
    if cfg.learning_rate is not None:
        return cfg.learning_rate
    defaults = cfg.default_learning_rates
    if is_tiny:
        return defaults.tiny
    return defaults.lora if cfg.uses_lora else defaults.full


class TrainConfig(Strict):
    """Keys common to all training stages.

    A stage whose learning rates differ declares its own `default_learning_rates` and
    `learning_rate = learning_rate_field(default_learning_rates)`, so `learning_rate()`
    and the key's description both follow it.
    """

    default_learning_rates: ClassVar[LearningRates] = LearningRates(tiny=3e-3, lora=2e-4, full=2e-5)
    # Defaults that replace the generic ones when the model is the built-in `tiny` and no source
    # sets the key: what was measured to work on the built-in task, so a bare command learns.
    tiny_defaults: ClassVar[dict[str, Any]] = {}
    # The held-out generation budget on tiny-based models when `eval.max_new_tokens` is not set.
    tiny_eval_tokens: ClassVar[int] = TINY_EVAL_TOKENS
    # The trainer arguments llmpost sets from its own keys (argument -> key); a stage adds its own.
    # `trainer:` may not set them: it would silently beat the key, and the manifest would record
    # the key's value, which was never used. stages/trainer_args.py checks that the list is whole.
    trainer_args_from_keys: ClassVar[dict[str, str]] = {
        "num_train_epochs": "epochs", "max_steps": "max_steps", "learning_rate": "learning_rate",
        "per_device_train_batch_size": "batch_size", "per_device_eval_batch_size": "batch_size",
        "gradient_accumulation_steps": "grad_accum", "warmup_steps": "warmup_ratio",
        "logging_steps": "logging_steps", "seed": "seed", "data_seed": "seed", "bf16": "bf16",
        "activation_checkpointing": "gradient_checkpointing",
        "gradient_checkpointing": "gradient_checkpointing",  # transformers' older name for the same switch
        # Always "none": llmpost reports to trackers itself (reporting/tracking.py), from metrics.jsonl's rows,
        # so a tracker shows the same names and steps as metrics.jsonl, for PPO and the judge as well.
        "report_to": "report_to",
    }

    model: str = Field("tiny", description="base: 'tiny', 'smollm2', an artifact ref (NAME, NAME@vN), a local path (model dir or .gguf file) or a hub id")
    data: str | None = Field(None, description="training data: a file, a saved dataset dir, builtin:NAME or a hub id")
    out: str | None = Field(None, description="artifact name to write (a new version NAME/vN); default: the stage name")
    seed: int = Field(0, description="random seed for data order, initialisation and sampling")
    epochs: float = Field(1.0, gt=0, description="passes over the training data (ignored when max_steps > 0)")
    max_steps: int = Field(-1, description="stop after this many optimizer steps; -1 = use epochs")
    learning_rate: float | None = learning_rate_field(default_learning_rates)
    batch_size: int = Field(8, ge=1, description="examples per device per step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    max_length: int = Field(512, ge=8, description="truncate tokenized examples to this many tokens")
    warmup_ratio: float = Field(0.0, ge=0, le=1, description="fraction of steps spent warming up the learning rate")
    logging_steps: int = Field(5, ge=1, description="log metrics every N optimizer steps")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter settings (--lora)")
    qlora: bool = Field(False, description="load the base in 4-bit NF4 (bitsandbytes) and train LoRA on top (--qlora)")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory on large models")
    bf16: bool | None = Field(None, description="bfloat16 mixed precision; default: on a GPU that "
                                "supports it, and on a CPU with AMX for models other than tiny")
    trust_remote_code: bool = Field(False, description="allow model repos to run their own code")
    eval: EvalSettings = Field(default_factory=EvalSettings, description="held-out evaluation settings")
    report_to: ReportTo = report_to_field()
    trainer: dict[str, Any] = Field(
        default_factory=dict,
        description="other TRL/transformers trainer arguments, passed through and validated; "
                    "not those llmpost sets from its own keys (learning_rate, seed, ...)",
    )

    @model_validator(mode="before")
    @classmethod
    def fill_tiny_defaults(cls, data: Any) -> Any:
        """`tiny_defaults` for each key no source set, when the model is `tiny`; the resolved config records them."""
        if not isinstance(data, dict) or not cls.tiny_defaults:
            return data
        if data.get("model", cls.model_fields["model"].default) != "tiny":
            return data
        return {**cls.tiny_defaults, **data}

    @property
    def uses_lora(self) -> bool:
        return self.lora.enabled or self.qlora

    # The held-out data a stage evaluates on when `eval.data` is not set (None: no default).
    default_eval_data: ClassVar[str | None] = "builtin:arith-prompts:test"

    def held_out_data(self) -> str | None:
        """What the held-out evaluation reads: `eval.data`, else the stage's default; None when it is off."""
        if not self.eval.enabled:
            return None
        return self.eval.data or self.default_held_out()

    def default_held_out(self) -> str | None:
        """The held-out prompts of the built-in task the training data comes from, else `default_eval_data`."""
        return builtin_prompts(self.data) or self.default_eval_data

    def eval_tokens(self, is_tiny: bool) -> int:
        """The held-out generation budget: `eval.max_new_tokens`, else the default for the model."""
        return eval_budget(self.eval.max_new_tokens, is_tiny, self.tiny_eval_tokens)

    @classmethod
    def refused_keys(cls, data: dict[str, Any]) -> list[str]:
        """`trainer:` arguments that llmpost sets from one of its own keys, each with the key to use instead."""
        trainer = data.get("trainer")
        if not isinstance(trainer, dict):  # not a mapping: validation reports it
            return []
        problems = []
        for arg in trainer:
            key = cls.trainer_args_from_keys.get(arg)
            if key is not None:
                flag = f" ({FLAGS[key]})" if key in FLAGS else ""
                problems.append(f"trainer.{arg}: llmpost sets this itself; use `{key}`{flag}")
        return problems


def qlora_vllm_problems(cfg: TrainConfig, vllm: bool, vllm_mode: str) -> list[str]:
    """What a 4-bit base (`qlora`) cannot do with vLLM: its adapter syncs alone to a colocated vLLM that stays
    awake (`rl/vllm_adapter.py`); `trl vllm-serve` takes no adapters, and sleep drops vLLM's copy of the base."""
    if not (vllm and cfg.qlora):
        return []
    problems = []
    if vllm_mode != "colocate":
        problems.append(f"--qlora with vllm_mode={vllm_mode}: a 4-bit base syncs its LoRA adapter to a colocated "
                        "vLLM only (`trl vllm-serve` takes no adapters): set vllm_mode=colocate")
    if cfg.trainer.get("vllm_enable_sleep_mode"):
        problems.append("--qlora with trainer.vllm_enable_sleep_mode: asleep, vLLM drops its 4-bit base, and the "
                        "adapter syncs do not send it back: leave it off")
    return problems
