"""`llmpost kto`: Kahneman-Tversky optimisation from thumbs up / down feedback, on TRL's KTOTrainer.

run(): resolve inputs -> load model -> evaluate before -> train -> evaluate after
-> save. Data is single responses marked desirable or not, in any shape
`data/feedback.py` reads: unpaired rows (prompt/completion/label), chats with a label,
or preference pairs and rankings split into desirable and undesirable responses.

KTO (Ethayarajh et al., 2024) needs no pairs: it raises the implicit reward
r = beta * log(pi(y|x) / ref(y|x)) of a desirable response above a reference point
and lowers an undesirable one's below it. The reference point is an estimate of
KL(pi || ref), made from each batch's rows with their responses shifted by one row, so
every prompt is scored with another prompt's response. The reference model is the
model KTO starts from (`--model`), kept as DPO keeps it (`stages/reference.py`).

TRL reads the rows in order (the shift only works within a fixed batch), so the
training rows are shuffled once, with `seed`, before TRL sees them: a pair split into
feedback gives two adjacent rows with one prompt, and the shifted "mismatched"
response would then answer the same prompt.

eval.json reports, on held-out feedback, each row's implicit reward: the means over
desirable and undesirable rows, their margin, and `label_accuracy`, the share of rows
whose reward has its label's sign (up for desirable, down for undesirable); and the
task's exact match before and after, as `llmpost sft` does.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from llmpost.config.base import LearningRates, TrainConfig, learning_rate_field
from llmpost.stages.context import StageContext, StageResult, stage_inputs

DEFAULT_EVAL_FEEDBACK = "builtin:arith-feedback:test"
BETA, TINY_BETA = 0.1, 1.0  # `beta` when none is given (see Config.beta)
# The loss types TRL's KTOTrainer implements (trl 1.x `KTOConfig.loss_type`).
LOSS_TYPES = Literal["kto", "apo_zero_unpaired"]


class Config(TrainConfig):
    # From the quickstart's SFT (0.621 exact match), 300 steps on builtin:arith-feedback with beta 1:
    # 1e-4 gained 7.1 points [4.4, 10.0] (seed 0) and 4.7 [1.7, 7.7] (seed 1); 2e-4 gained 6.5 [3.6, 9.4].
    # LoRA and full fine-tuning keep the shared defaults, as DPO does (not measured here).
    default_learning_rates: ClassVar[LearningRates] = replace(TrainConfig.default_learning_rates, tiny=1e-4)
    learning_rate: float | None = learning_rate_field(default_learning_rates)
    trainer_args_from_keys: ClassVar[dict[str, str]] = {
        **TrainConfig.trainer_args_from_keys,
        "beta": "beta", "loss_type": "loss_type", "desirable_weight": "desirable_weight",
        "undesirable_weight": "undesirable_weight", "max_length": "max_length",
        "precompute_ref_log_probs": "precompute_ref",
    }
    data: str = Field("builtin:arith-feedback",
                      description="feedback: prompt+completion+label rows, messages+label, or preference pairs and "
                                  "rankings (best response desirable, the rest undesirable)")
    eval_feedback: str | None = Field(
        DEFAULT_EVAL_FEEDBACK, description="held-out feedback for the implicit-reward figures; null to skip"
    )
    # A row stops pulling once beta * |log(pi/ref)| passes a few units: beta sets how far an answer's log-prob
    # may move. From the quickstart's SFT (lr 1e-4, 300 steps), at 0.1 held-out wrong answers fell by 3.6
    # nats on average and right ones by 0.3 with them (-4.7 points exact match); at 1.0 wrong ones fell by
    # 1.8 and right ones rose by 0.2 (+7.1 points). 0.1, TRL's default, is for responses of hundreds of
    # tokens, whose log-probs move by many more nats than the built-in task's ~10-token answers. So the
    # default follows the model, as the learning rate does: 1.0 for tiny and models trained from it.
    beta: float | None = Field(None, gt=0, description="KL strength; higher stays nearer the reference; "
                                                       f"default: {TINY_BETA:g} for tiny, {BETA:g} for other models")
    loss_type: LOSS_TYPES = Field(
        "kto", description="kto: rewards measured from a KL reference point; apo_zero_unpaired: from 0 "
                           "(for desirable answers better than the model's own)")
    desirable_weight: float = Field(1.0, gt=0, description="loss weight of a desirable row; raise it when they are fewer")
    undesirable_weight: float = Field(
        1.0, gt=0, description="loss weight of an undesirable row; lower it when they outnumber desirable ones "
                               "(rankings give one desirable response and K-1 undesirable)")
    precompute_ref: bool = Field(
        False, description="compute reference log-probs once before training instead of keeping a reference model"
    )

    @model_validator(mode="after")
    def kl_needs_a_batch(self):
        if self.loss_type == "kto" and self.batch_size < 2:
            raise ValueError("the kto loss estimates its KL reference point from other rows of the same batch: "
                             "batch_size must be at least 2")
        return self


def inputs(cfg: Config) -> dict[str, list[str]]:
    return stage_inputs(cfg, cfg.eval_feedback if cfg.eval.enabled else None)


def run(cfg: Config, ctx: StageContext) -> StageResult:
    # Rows are checked before TRL is imported (seconds): a row in the wrong shape fails at once.
    train = feedback_rows(ctx, cfg.data)
    random.Random(cfg.seed).shuffle(train)  # see the module docstring: TRL keeps this order
    held_out_feedback = (feedback_rows(ctx, cfg.eval_feedback)[: cfg.eval.max_samples]
                         if cfg.eval.enabled and cfg.eval_feedback else [])

    from datasets import Dataset
    from trl import KTOTrainer

    from llmpost.evaluation.report import eval_fields, headline, write_items
    from llmpost.models.load import count_4bit_layers
    from llmpost.models.save import save_model
    from llmpost.stages.heldout import HeldOut, held_out_prompts
    from llmpost.stages.reference import drop_reference_adapter, reference_model, reference_text
    from llmpost.stages.training import load_trainable, quiet, report_callback, resume_checkpoint

    src = ctx.model(cfg.model)
    args = build_kto_args(cfg, ctx, src.is_tiny)  # before loading: a bad `trainer:` key fails fast

    tokenizer, model, peft_config = load_trainable(src, cfg)

    held_out = HeldOut.of(cfg, src, held_out_prompts(ctx, cfg), tokenizer)
    before = held_out.before(model)
    trainer = quiet(KTOTrainer(
        model=model, ref_model=reference_model(cfg, src), args=args, train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(held_out_feedback) if held_out_feedback else None,
        processing_class=tokenizer, peft_config=peft_config,
        callbacks=[report_callback(ctx, "kto")],
    ))
    output = trainer.train(resume_from_checkpoint=resume_checkpoint(ctx))  # continues an interrupted run
    after = held_out.after(trainer.model)
    rewards = implicit_rewards(trainer) if held_out_feedback else None

    drop_reference_adapter(trainer.model)
    save_model(trainer.model, tokenizer, ctx.out_dir / "model", src)
    write_items(ctx.out_dir, before, after)
    report = {**(rewards or {}), **eval_fields(before, after)}
    final_loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), output.training_loss)
    desirable = sum(row["label"] for row in train)
    metrics = {
        "label_accuracy": rewards and rewards["label_accuracy"],
        "reward_margin": rewards and rewards["reward_margin"],
        **headline(report),
        "train_loss": final_loss,
        "train_desirable": desirable,
        "train_undesirable": len(train) - desirable,
        "steps": trainer.state.global_step,
        "train_runtime_s": round(output.metrics["train_runtime"], 2),
        "quantized_layers": count_4bit_layers(trainer.model) if cfg.qlora else None,
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    card = (f"KTO ({cfg.loss_type} loss, beta={args.beta:g}) on `{cfg.data}` from `{cfg.model}`.\n"
            f"Reference during training: {reference_text(cfg, src, 'KTO')}.\n"
            "`label_accuracy` is the share of held-out rows whose implicit reward beta * log(pi/ref) "
            "is positive for a desirable answer and negative for an undesirable one.\n")
    return StageResult(metrics=metrics, eval=report, card=card)


def build_kto_args(cfg: Config, ctx: StageContext, is_tiny: bool):
    from trl import KTOConfig

    from llmpost.stages.trainer_args import build_args

    from_keys = dict(
        beta=kto_beta(cfg, is_tiny), loss_type=cfg.loss_type, desirable_weight=cfg.desirable_weight,
        undesirable_weight=cfg.undesirable_weight, max_length=cfg.max_length,
        precompute_ref_log_probs=cfg.precompute_ref,
    )
    return build_args(KTOConfig, cfg, ctx.work_dir, is_tiny=is_tiny, from_keys=from_keys,
                      eval_strategy="no", dataset_num_proc=None)


def kto_beta(cfg: Config, is_tiny: bool) -> float:
    """The configured beta, or the default for the model (`Config.beta`)."""
    if cfg.beta is not None:
        return cfg.beta
    return TINY_BETA if is_tiny else BETA


def feedback_rows(ctx: StageContext, ref: str) -> list[dict]:
    """`ref`'s rows as TRL conversational unpaired rows {prompt, completion, label}."""
    from llmpost.data.feedback import to_feedback
    from llmpost.errors import DataError

    rows = to_feedback(ctx.data(ref).rows, ref)
    if not rows:
        raise DataError(f"{ref}: no feedback (every preference row is a tie)",
                        hint="KTO needs responses marked desirable or undesirable; tied responses give none")
    return rows


def implicit_rewards(trainer) -> dict:
    """Implicit rewards beta * (log pi - log ref) of the trainer's held-out rows, by label.

    The reference log-probs come from wherever the trainer takes them: the precomputed
    column, the reference model, or the adapter disabled / swapped for its frozen copy.
    """
    import torch

    from llmpost.evaluation.report import rate_fields
    from llmpost.stages.reference import sequence_logps

    model = trainer.model
    was_training = model.training
    model.eval()
    rewards, labels = [], []
    with torch.no_grad():
        for batch in trainer.get_eval_dataloader():  # already on the model's device
            if "ref_logps" in batch:
                reference = batch["ref_logps"]
            else:
                ref_model = trainer.ref_model if trainer.ref_model is not None else model
                reference, _ = trainer.compute_ref_log_probs(ref_model, batch)  # (_: the KL pass, unused here)
            rewards.append(trainer.beta * (sequence_logps(model, batch).float() - reference.float()))
            labels.append(batch["label"].bool())
    model.train(was_training)
    rewards, labels = torch.cat(rewards), torch.cat(labels)
    desirable, undesirable = rewards[labels], rewards[~labels]
    desirable_reward = desirable.mean().item() if len(desirable) else None
    undesirable_reward = undesirable.mean().item() if len(undesirable) else None
    return {
        **rate_fields("label_accuracy", torch.where(labels, rewards > 0, rewards < 0).tolist()),
        "reward_margin": (desirable_reward - undesirable_reward
                          if desirable_reward is not None and undesirable_reward is not None else None),
        "desirable_reward": desirable_reward,
        "undesirable_reward": undesirable_reward,
        "n_desirable": len(desirable),
        "n_undesirable": len(undesirable),
    }
