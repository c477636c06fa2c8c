"""`llmpost prm`: a process reward model, scoring every step of a solution, from step-labelled data.

run(): resolve inputs -> load a one-output token classifier (on an SFT artifact or any
base; LoRA/QLoRA with the score head saved in the adapter) -> score the held-out steps
-> train -> score them again -> save.

What the model reads and where its scores are read is `rewards/process.py`'s (it says
why a token classifier with one output): prompt, then each step and the separator, the
score at each step's last token. The loss is binary cross-entropy at those tokens only,
against the step's label in [0, 1]; every other token is context. TRL's PRMTrainer, which
did the same with two classes, left TRL in 2026; this one is a plain transformers
Trainer with that loss.

The held-out report (`rewards/step_report.py`): step accuracy, first-error localisation,
solution accuracy, each before and after training with its interval and the paired change.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import ClassVar

from pydantic import Field

from llmpost.config.base import LearningRates, TrainConfig, builtin_test_split, learning_rate_field
from llmpost.evaluation.generation import FIXED_BATCH
from llmpost.stages.context import StageContext, StageResult, stage_inputs


class Config(TrainConfig):
    default_learning_rates: ClassVar[LearningRates] = replace(TrainConfig.default_learning_rates, tiny=1e-3)
    learning_rate: float | None = learning_rate_field(default_learning_rates)
    data: str = Field("builtin:arith-steps", description="step-labelled solutions: prompt + completions (steps) + "
                                                         "labels, Math-Shepherd input + label, or PRM800K rows")
    batch_size: int = Field(16, ge=1, description="solutions per device per step")

    default_eval_data: ClassVar[str | None] = "builtin:arith-steps:test"

    def default_held_out(self) -> str | None:
        """The test split of built-in training data (its own shape), else `default_eval_data`."""
        return builtin_test_split(self.data) or self.default_eval_data


def inputs(cfg: Config) -> dict[str, list[str]]:
    return stage_inputs(cfg)


def run(cfg: Config, ctx: StageContext) -> StageResult:
    from llmpost.data.steps import to_step_rows

    # Rows are checked before TRL is imported (seconds): a row in the wrong shape fails at once.
    eval_ref = cfg.held_out_data()
    train = to_step_rows(ctx.data(cfg.data).rows, cfg.data)
    held_out = to_step_rows(ctx.data(eval_ref).rows, eval_ref)[: cfg.eval.max_samples] if eval_ref else []

    from llmpost.models.load import load_tokenizer
    from llmpost.models.save import save_model
    from llmpost.rewards.process import score_encoded, step_input_ids
    from llmpost.rewards.step_report import step_report
    from llmpost.stages.scoring_head import scorer_to_train
    from llmpost.stages.training import quiet, report_callback, resume_checkpoint

    src = ctx.model(cfg.model)
    args = build_prm_args(cfg, ctx, src.is_tiny)  # before loading: a bad `trainer:` key fails fast

    tokenizer = load_tokenizer(src, cfg.trust_remote_code)
    model = scorer_to_train(src, cfg, kind="tokcls")
    if not cfg.qlora:  # a 4-bit model is placed when loaded; evaluate where training will run
        model.to(args.device)
    train_rows, dropped = encode(train, tokenizer, cfg.max_length)
    if dropped:
        ctx.console.print(f"[yellow]note:[/yellow] {dropped} solution(s) longer than max_length={cfg.max_length} "
                          "tokens were left out")
    held_ids = [step_input_ids(tokenizer, row.prompt, row.steps) for row in held_out]

    before = score_encoded(model, held_ids, cfg.eval.batch_size or FIXED_BATCH) if held_out else None
    trainer = quiet(step_trainer_class()(model=model, args=args, train_dataset=as_dataset(train_rows),
                                         processing_class=tokenizer, callbacks=[report_callback(ctx, "prm")]))
    runtime = trainer.train(resume_from_checkpoint=resume_checkpoint(ctx)).metrics["train_runtime"]
    after = score_encoded(trainer.model, held_ids, cfg.eval.batch_size or FIXED_BATCH) if held_out else None

    report = (step_report(held_out, after, before) | {"eval_data": eval_ref}) if held_out else None
    save_model(trainer.model, tokenizer, ctx.out_dir / "model", src)
    final_loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None)
    headline = ("step_accuracy", "step_accuracy_before", "step_accuracy_delta", "step_accuracy_ci",
                "first_error_accuracy", "first_error_accuracy_before", "solution_accuracy", "good_share")
    metrics = {k: (report or {}).get(k) for k in headline} | {
        "train_loss": final_loss, "steps": trainer.state.global_step, "train_runtime_s": round(runtime, 2)}
    return StageResult(metrics={k: v for k, v in metrics.items() if v is not None}, eval=report, card=usage(ctx.name))


def build_prm_args(cfg: Config, ctx: StageContext, is_tiny: bool):
    from transformers import TrainingArguments

    from llmpost.stages.trainer_args import build_args

    # The columns are the collator's, not the model's: the Trainer must not drop them.
    return build_args(TrainingArguments, cfg, ctx.work_dir, is_tiny=is_tiny, from_keys={},
                      remove_unused_columns=False)


# --- data ------------------------------------------------------------------------------------


def encode(rows, tokenizer, max_length: int) -> tuple[list[dict], int]:
    """Each solution as token ids with its step ends and labels; solutions over `max_length` tokens are dropped.

    Dropped whole, never cut: a cut solution would lose its last steps' labels, and those
    are the ones that tell a wrong final answer.
    """
    from llmpost.rewards.process import step_input_ids

    out, dropped = [], 0
    for row in rows:
        ids, ends = step_input_ids(tokenizer, row.prompt, row.steps)
        if len(ids) > max_length:
            dropped += 1
            continue
        out.append({"input_ids": ids, "step_ends": ends, "step_labels": row.labels})
    return out, dropped


def as_dataset(rows: list[dict]):
    from datasets import Dataset

    from llmpost.errors import DataError

    if not rows:
        raise DataError("no training solutions left: every one is longer than max_length",
                        hint="raise max_length (--set max_length=...)")
    return Dataset.from_list(rows)


def collate(rows: list[dict], pad_id: int) -> dict:
    """One batch, padded on the right, with each step's label at its last token (`step_mask` marks them)."""
    import torch

    from llmpost.evaluation.rows import pad_rows

    input_ids, attention_mask = pad_rows([r["input_ids"] for r in rows], pad_id, left=False)
    labels = torch.zeros(input_ids.shape, dtype=torch.float)
    mask = torch.zeros(input_ids.shape, dtype=torch.bool)
    for i, row in enumerate(rows):
        labels[i, row["step_ends"]] = torch.tensor(row["step_labels"], dtype=torch.float)
        mask[i, row["step_ends"]] = True
    return {"input_ids": input_ids, "attention_mask": attention_mask, "step_labels": labels, "step_mask": mask}


@cache
def step_trainer_class():
    """transformers' Trainer with the step loss: binary cross-entropy at each step's last token.

    Built on first use, so importing this module does not import transformers.
    """
    import torch.nn.functional as F
    from transformers import Trainer

    class StepRewardTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            pad_id = kwargs["processing_class"].pad_token_id or 0
            kwargs.setdefault("data_collator", lambda rows: collate(rows, pad_id))
            super().__init__(*args, **kwargs)
            # A 4-bit base trains its LoRA weights in bf16; the score head stays fp32, as a reward model's does.
            for name, param in self.model.named_parameters():
                if param.requires_grad and ".score." in name:
                    param.data = param.data.float()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
            mask = inputs["step_mask"]
            logits = outputs.logits[..., 0].float()[mask]
            loss = F.binary_cross_entropy_with_logits(logits, inputs["step_labels"][mask])
            return (loss, outputs) if return_outputs else loss

    return StepRewardTrainer


def usage(name: str) -> str:
    return "\n".join([
        "A process reward model: a score in [0, 1] for every step of a solution (steps are lines).",
        "",
        "```bash",
        f"llmpost score {name} --data builtin:arith-steps:test        # a score per step, step accuracy",
        f"llmpost grpo --model sft --reward prm:{name}                # the weakest step's score as a reward",
        f"llmpost eval sft --best-of 8 --rank-by prm:{name},vote      # rerank sampled answers",
        "```",
        "",
        "With plain transformers/peft, load `model/` with `AutoModelForTokenClassification` (full model) or",
        "`peft.AutoPeftModelForTokenClassification` (adapter + score head; pass `num_labels=1`, which the base's",
        "config does not hold); feed the chat-templated prompt",
        "(as a generation prompt), then each step followed by a newline; a step's score is",
        "`sigmoid(logits[step's last token, 0])`.",
    ])
