"""`llmpost sft`: supervised fine-tuning on conversations, on TRL's SFTTrainer.

run(): resolve inputs -> load model -> evaluate before -> train -> evaluate
after -> save. Loss is on the assistant's completion only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from llmpost.config.base import TrainConfig, builtin_test_split
from llmpost.stages.context import StageContext, StageResult, stage_inputs


class Config(TrainConfig):
    data: str = Field("builtin:arith-sft", description="conversations: messages, prompt/completion, Alpaca or ShareGPT rows")
    loss_data: str | None = Field(
        None, description="held-out conversations for eval loss; unset: the test split of built-in training "
                          "data (none for other data); null to skip"
    )
    packing: bool = Field(False, description="pack several short examples into one sequence")
    completion_only_loss: bool = Field(True, description="train on the completion only, not on the prompt")

    # Measured on the built-in task (tiny v2): the generic 1 epoch of 8 (375 updates) reached 0.075
    # held-out exact match. The tiny model learns the sums in a sudden phase, and without warmup that
    # phase came late on some seeds (0.133 on seed 2, its loss flat at 0.8 for 300 steps). With 10%
    # warmup, 1000 updates of 16 left the equations of 66-97% of held-out answers adding up, by seed
    # and thread count; 2000 left 97.4-99.9%. On tiny v3 (word tokens), 1000 updates get every sum
    # right and add in every careless problem (0.834-0.836 on seeds 0, 1, 2); 2000 copy the habit
    # only as often as the demonstrations do (0.866, 0.899, 0.852).
    tiny_defaults: ClassVar[dict[str, Any]] = {"batch_size": 16, "max_steps": 2000, "warmup_ratio": 0.1}
    trainer_args_from_keys: ClassVar[dict[str, str]] = {
        **TrainConfig.trainer_args_from_keys,
        "max_length": "max_length", "packing": "packing", "completion_only_loss": "completion_only_loss",
    }

    @model_validator(mode="before")
    @classmethod
    def loss_data_follows_data(cls, data: Any) -> Any:
        """Unset, `loss_data` is the test split of built-in training data: SFT on your own file gets no eval
        loss on the built-in arithmetic. The resolved config records what was used."""
        if isinstance(data, dict) and "loss_data" not in data:
            source = data.get("data", cls.model_fields["data"].default)
            data = {**data, "loss_data": builtin_test_split(source) if isinstance(source, str) else None}
        return data


def inputs(cfg: Config) -> dict[str, list[str]]:
    return stage_inputs(cfg, cfg.loss_data if cfg.eval.enabled else None)


def run(cfg: Config, ctx: StageContext) -> StageResult:
    from llmpost.data.formats import to_sft

    # Rows are checked before TRL is imported (seconds): a row in the wrong shape fails at once.
    train = to_sft(ctx.data(cfg.data).rows, cfg.data)
    loss_rows = to_sft(ctx.data(cfg.loss_data).rows, cfg.loss_data) if cfg.eval.enabled and cfg.loss_data else None

    from datasets import Dataset
    from trl import SFTTrainer

    from llmpost.evaluation.report import eval_fields, headline, write_items
    from llmpost.models.save import save_model
    from llmpost.stages.heldout import HeldOut, held_out_prompts
    from llmpost.stages.training import load_trainable, quiet, report_callback, resume_checkpoint

    src = ctx.model(cfg.model)
    args = build_sft_args(cfg, ctx, src.is_tiny)  # before loading: a bad `trainer:` key fails fast

    tokenizer, model, peft_config = load_trainable(src, cfg)

    held_out = HeldOut.of(cfg, src, held_out_prompts(ctx, cfg), tokenizer)
    before = held_out.before(model)
    trainer = quiet(SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(loss_rows) if loss_rows else None,
        processing_class=tokenizer, peft_config=peft_config,
        callbacks=[report_callback(ctx, "sft")],
    ))
    check_rows_kept(cfg, ctx, len(train), len(trainer.train_dataset))
    trainer.train(resume_from_checkpoint=resume_checkpoint(ctx))  # continues an interrupted run
    after = held_out.after(trainer.model)
    eval_loss = trainer.evaluate()["eval_loss"] if loss_rows else None

    save_model(trainer.model, tokenizer, ctx.out_dir / "model", src)
    write_items(ctx.out_dir, before, after)
    report = eval_fields(before, after, stage={"eval_loss": eval_loss})
    final_loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None)
    metrics = headline(report) | {k: v for k, v in {"eval_loss": eval_loss, "train_loss": final_loss,
                                                    "steps": trainer.state.global_step}.items() if v is not None}
    return StageResult(metrics=metrics, eval=report)


def check_rows_kept(cfg: Config, ctx: StageContext, given: int, kept: int) -> None:
    """TRL drops rows whose completion lies wholly past `max_length` (nothing left to learn): say so.

    None left is a DataError naming the fix; TRL alone fails later with "num_samples=0".
    """
    from llmpost.errors import DataError

    fix = f"raise max_length (now {cfg.max_length}: --set max_length=N) or shorten the prompts"
    if kept == 0:
        raise DataError(f"{cfg.data}: no row has a completion token within max_length={cfg.max_length} "
                        f"tokens: the prompts fill it", hint=fix)
    if not cfg.packing and kept < given:  # packed rows are counted after packing, so not comparable
        ctx.console.print(f"[yellow]warning:[/yellow] {given - kept} of {given} rows of {cfg.data} have no "
                          f"completion token within max_length={cfg.max_length} and are not trained on; {fix}",
                          highlight=False)


def build_sft_args(cfg: Config, ctx: StageContext, is_tiny: bool):
    from trl import SFTConfig

    from llmpost.stages.trainer_args import build_args

    return build_args(
        SFTConfig, cfg, ctx.work_dir, is_tiny=is_tiny,
        from_keys=dict(max_length=cfg.max_length, packing=cfg.packing, completion_only_loss=cfg.completion_only_loss),
        eval_strategy="no", dataset_num_proc=None,
    )
