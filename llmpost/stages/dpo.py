"""`llmpost dpo`: direct preference optimisation from pairs, rankings or judge output, on TRL's DPOTrainer.

run(): resolve inputs -> load model -> evaluate before -> train -> evaluate after
-> save. Data is any preference format `data/preferences.py` reads (pairs,
rankings expanded by `expand`, UltraFeedback) or a preference-dataset artifact
(`llmpost judge` output) given by name.

The reference model is always the model DPO starts from (`--model`): a frozen second
copy (or precomputed log-probs) in full fine-tuning, the new adapter disabled under
--lora/--qlora, a frozen copy of the input adapter when the input is one
(`stages/reference.py`, shared with `llmpost kto`, says why). Under LoRA the reference's
forward replays the policy's frozen layers below the lowest adapter (`stages/dpo_trainer.py`).

eval.json reports the implicit reward r = beta * (log pi(y|x) - log ref(y|x)) on
held-out pairs (accuracy: r(chosen) > r(rejected); margin: their mean difference)
and the task's exact-match accuracy before and after, as `llmpost sft` does.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from llmpost.config.base import LearningRates, TrainConfig, learning_rate_field
from llmpost.stages.context import StageContext, StageResult, stage_inputs

DEFAULT_EVAL_PAIRS = "builtin:arith-pairs:test"
# The loss types TRL's DPOTrainer implements (trl 1.x `DPOConfig.loss_type`).
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


class Config(TrainConfig):
    # DPO on the tiny model moves fast: from an SFT at 0.74 exact match, 150 steps at 5e-4 fell to
    # 0.29 (wrong answers pushed down drag the shared number tokens with them); 1e-4 kept ~0.7.
    default_learning_rates: ClassVar[LearningRates] = replace(TrainConfig.default_learning_rates, tiny=1e-4)
    learning_rate: float | None = learning_rate_field(default_learning_rates)
    trainer_args_from_keys: ClassVar[dict[str, str]] = {
        **TrainConfig.trainer_args_from_keys,
        "beta": "beta", "loss_type": "loss", "loss_weights": "loss_weights", "label_smoothing": "label_smoothing",
        "max_length": "max_length", "precompute_ref_log_probs": "precompute_ref",
    }
    data: str = Field("builtin:arith-pairs", description="preferences: pairs, rankings, UltraFeedback rows, or a judge artifact")
    eval_pairs: str | None = Field(
        DEFAULT_EVAL_PAIRS, description="held-out preference data for implicit-reward accuracy; null to skip"
    )
    beta: float = Field(0.1, gt=0, description="KL strength; higher stays nearer the reference (tau for ipo)")
    loss: list[str] = Field(["sigmoid"], description="DPO loss type(s): " + ", ".join(LOSS_TYPES) + "; several are summed")
    loss_weights: list[float] | None = Field(None, description="weight of each loss in `loss`; default: 1 each")
    label_smoothing: float = Field(
        0.0, ge=0.0, lt=0.5, description="assumed rate of flipped labels (robust) or EXO's epsilon (exo_pair)"
    )
    expand: Literal["all", "best_vs_rest"] = Field(
        "all", description="rankings -> pairs: every ordered pair, or the best against each worse response"
    )
    precompute_ref: bool = Field(
        False, description="compute reference log-probs once before training instead of keeping a reference model"
    )
    reuse_frozen_layers: bool = Field(
        True, description="under LoRA, the reference's forward replays the policy's layers below the lowest "
                          "adapter (dpo_trainer.py); false = full forwards, same result"
    )

    @field_validator("loss", mode="before")
    @classmethod
    def split_loss(cls, value):
        """`--loss ipo` and `--loss sigmoid,sft` both arrive as strings."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("loss")
    @classmethod
    def known_loss(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one loss type, e.g. sigmoid")
        for name in value:
            if name not in LOSS_TYPES:
                close = difflib.get_close_matches(name, LOSS_TYPES, n=1)
                tip = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown DPO loss {name!r}{tip} (choose from {', '.join(LOSS_TYPES)})")
        return value

    @model_validator(mode="after")
    def loss_settings_agree(self):
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss):
            raise ValueError(f"loss_weights has {len(self.loss_weights)} values but loss has {len(self.loss)} types")
        if "exo_pair" in self.loss and self.label_smoothing == 0.0:
            raise ValueError("loss exo_pair needs label_smoothing > 0 (the EXO paper uses 1e-3)")
        return self


def inputs(cfg: Config) -> dict[str, list[str]]:
    return stage_inputs(cfg, cfg.eval_pairs if cfg.eval.enabled else None)


def run(cfg: Config, ctx: StageContext) -> StageResult:
    # Rows are checked before TRL is imported (seconds): a row in the wrong shape fails at once.
    train = preference_pairs(ctx, cfg.data, cfg.expand)
    held_out_pairs = (preference_pairs(ctx, cfg.eval_pairs, cfg.expand)[: cfg.eval.max_samples]
                      if cfg.eval.enabled and cfg.eval_pairs else [])

    from datasets import Dataset

    from llmpost.evaluation.report import eval_fields, headline, write_items
    from llmpost.models.load import count_4bit_layers
    from llmpost.models.save import save_model
    from llmpost.stages.dpo_trainer import TrunkSharingDPOTrainer
    from llmpost.stages.heldout import HeldOut, held_out_prompts
    from llmpost.stages.reference import drop_reference_adapter, reference_model
    from llmpost.stages.training import load_trainable, quiet, report_callback, resume_checkpoint

    src = ctx.model(cfg.model)
    args = build_dpo_args(cfg, ctx, src.is_tiny)  # before loading: a bad `trainer:` key fails fast

    tokenizer, model, peft_config = load_trainable(src, cfg)
    ref_model = reference_model(cfg, src)

    held_out = HeldOut.of(cfg, src, held_out_prompts(ctx, cfg), tokenizer)
    before = held_out.before(model)
    trainer = quiet(TrunkSharingDPOTrainer(
        model=model, ref_model=ref_model, args=args, train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(held_out_pairs) if held_out_pairs else None,
        processing_class=tokenizer, peft_config=peft_config,
        callbacks=[report_callback(ctx, "dpo")], reuse_frozen_layers=cfg.reuse_frozen_layers,
    ))
    output = trainer.train(resume_from_checkpoint=resume_checkpoint(ctx))  # continues an interrupted run
    after = held_out.after(trainer.model)
    rewards = implicit_rewards(trainer) if held_out_pairs else None

    drop_reference_adapter(trainer.model)
    save_model(trainer.model, tokenizer, ctx.out_dir / "model", src)
    write_items(ctx.out_dir, before, after)
    report = {**(rewards or {}), **eval_fields(before, after)}
    final_loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), output.training_loss)
    metrics = {
        "reward_accuracy": rewards and rewards["reward_accuracy"],
        "reward_margin": rewards and rewards["reward_margin"],
        **headline(report),
        "train_loss": final_loss,
        "train_pairs": len(train),
        "steps": trainer.state.global_step,
        "train_runtime_s": round(output.metrics["train_runtime"], 2),
        "quantized_layers": count_4bit_layers(trainer.model) if cfg.qlora else None,
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    return StageResult(metrics=metrics, eval=report, card=card_text(cfg, src))


def build_dpo_args(cfg: Config, ctx: StageContext, is_tiny: bool):
    from trl import DPOConfig

    from llmpost.stages.trainer_args import build_args

    from_keys = dict(
        beta=cfg.beta, loss_type=cfg.loss, loss_weights=cfg.loss_weights, label_smoothing=cfg.label_smoothing,
        max_length=cfg.max_length, precompute_ref_log_probs=cfg.precompute_ref,
    )
    return build_args(DPOConfig, cfg, ctx.work_dir, is_tiny=is_tiny, from_keys=from_keys,
                      eval_strategy="no", dataset_num_proc=None)


def preference_pairs(ctx: StageContext, ref: str, expand: str) -> list[dict]:
    """`ref`'s rows as TRL conversational pairs {prompt, chosen, rejected} (rankings expanded by `expand`)."""
    from llmpost.data.preferences import to_pairs
    from llmpost.errors import DataError

    pairs = to_pairs(ctx.data(ref).rows, ref, expand=expand)
    if not pairs:
        raise DataError(f"{ref}: no preference pairs (every ranking is a tie)",
                        hint="DPO needs responses ranked better/worse; tied responses give no pair")
    return [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]


def implicit_rewards(trainer) -> dict:
    """Implicit rewards beta * (log pi - log ref) on the trainer's held-out pairs.

    Computed per pair over the whole eval set (TRL's own `eval_rewards/*` are means
    of per-batch means). The reference log-probs come from wherever the trainer
    takes them: the precomputed column, the reference model, or the adapter
    disabled / swapped for its frozen copy.
    """
    import torch

    from llmpost.evaluation.report import rate_fields
    from llmpost.stages.reference import sequence_logps

    model = trainer.model
    was_training = model.training
    model.eval()
    policy, reference = [], []
    with torch.no_grad():
        for batch in trainer.get_eval_dataloader():  # already on the model's device
            policy.append(sequence_logps(model, batch))
            if "ref_chosen_logps" in batch:
                reference.append(torch.cat([batch["ref_chosen_logps"], batch["ref_rejected_logps"]]))
            else:
                ref_model = trainer.ref_model if trainer.ref_model is not None else model
                reference.append(torch.cat(trainer.compute_ref_log_probs(ref_model, batch)))
    model.train(was_training)
    chosen, rejected, ref_chosen, ref_rejected = [], [], [], []
    for pol, ref in zip(policy, reference, strict=True):
        pol_c, pol_r = pol.float().chunk(2)  # a batch is [chosen..., rejected...]
        ref_c, ref_r = ref.float().chunk(2)
        chosen.append(pol_c), rejected.append(pol_r), ref_chosen.append(ref_c), ref_rejected.append(ref_r)
    chosen, rejected = torch.cat(chosen), torch.cat(rejected)
    ref_chosen, ref_rejected = torch.cat(ref_chosen), torch.cat(ref_rejected)
    chosen_reward = trainer.beta * (chosen - ref_chosen)
    rejected_reward = trainer.beta * (rejected - ref_rejected)
    return {
        **rate_fields("reward_accuracy", (chosen_reward > rejected_reward).tolist()),
        "reward_margin": (chosen_reward - rejected_reward).mean().item(),
        "chosen_reward": chosen_reward.mean().item(),
        "rejected_reward": rejected_reward.mean().item(),
        **rate_fields("logp_accuracy_before", (ref_chosen > ref_rejected).tolist()),
        **rate_fields("logp_accuracy", (chosen > rejected).tolist()),
        "n_pairs": len(chosen),
    }


def card_text(cfg: Config, src) -> str:
    from llmpost.stages.reference import reference_text

    return (f"DPO ({', '.join(cfg.loss)} loss, beta={cfg.beta}) on `{cfg.data}` from `{cfg.model}`.\n"
            f"Reference during training: {reference_text(cfg, src, 'DPO')}.\n"
            "`reward_accuracy` is the share of held-out pairs whose implicit reward "
            "beta * log(pi/ref) is higher for the chosen answer.\n")
