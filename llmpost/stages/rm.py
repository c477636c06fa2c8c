"""`llmpost rm`: a reward model from ranked preferences, with a held-out quality gate.

run(): resolve inputs -> load a one-output sequence classifier (on an SFT artifact
or any base; LoRA/QLoRA with the score head saved in the adapter) -> evaluate before
-> train -> evaluate after -> gate -> save.

The ranking loss. Every accepted preference row becomes a ranking; a ranking of K
gives all K*(K-1)/2 (or, with `pairs: best_vs_rest`, K-1) ordered pairs, and pairs are
gathered by prompt (`rewards.reward_model.group_by_prompt`). One training example is
one prompt with all its distinct responses, so each response is scored once per
step (4 forward passes for K=4, not the 12 of feeding the 6 pairs separately, as in
InstructGPT). The loss is Bradley-Terry,

    loss = sum_pairs w * -log sigmoid(r_better - r_worse - margin) / sum_pairs w,

where a prompt's pair weights sum to 1 (each of its n pairs weighs 1/n), so every
prompt counts once however many responses were ranked; `margin` is 0 unless
`margin_from_scores` asks the better reward to lead by the score (or rank) difference.
TRL's RewardTrainer weighs every pair the same and scores both sides of each pair,
so the trainer below subclasses it and replaces the data layout and the loss.

The gate: with `min_accuracy`, a held-out pairwise accuracy below it fails the stage
(exit 1) before the model is saved: no version is published and `latest` does not
move; the report (eval.json, metrics.jsonl) is kept in the run's work directory under
the store's `.tmp/` for inspection, and the error names it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from functools import cache
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from llmpost.config.base import LearningRates, TrainConfig, builtin_test_split, learning_rate_field
from llmpost.evaluation.generation import FIXED_BATCH
from llmpost.stages.context import StageContext, StageResult, stage_inputs

GATE_REPORT_DIR = "gate-failed"


class Config(TrainConfig):
    # On the quickstart's SFT (all weights, 300 steps): 1e-3 reached 0.78 held-out pairwise accuracy, 3e-3 0.68.
    default_learning_rates: ClassVar[LearningRates] = replace(TrainConfig.default_learning_rates, tiny=1e-3)
    learning_rate: float | None = learning_rate_field(default_learning_rates)
    data: str = Field("builtin:arith-rankings", description="preferences: pairs, rankings (responses best first, ranks or scores) or UltraFeedback rows")
    batch_size: int = Field(8, ge=1, description="prompts per device per step; each brings all of its ranked responses")
    pairs: Literal["all", "best_vs_rest"] = Field("all", description="pairs from a ranking of K: all K(K-1)/2, or the best against each other (K-1)")
    margin_from_scores: bool = Field(False, description="require the better reward to lead by score(better) - score(worse) (rank distance without scores)")
    center_rewards: float = Field(
        0.01, ge=0, description="weight of the mean squared reward in the loss (Eisenstein et al. 2023): a ranking "
                                "fixes rewards only up to a shift per prompt; this centres every prompt's rewards "
                                "on 0 so that they compare across prompts, as PPO needs; 0: off")
    min_accuracy: float | None = Field(None, ge=0, le=1, description="quality gate: fail (exit 1) when held-out pairwise accuracy is below this")

    default_eval_data: ClassVar[str | None] = "builtin:arith-rankings:test"

    def default_held_out(self) -> str | None:
        """The test split of built-in training data (its own shape), else `default_eval_data`."""
        return builtin_test_split(self.data) or self.default_eval_data
    trainer_args_from_keys: ClassVar[dict[str, str]] = {**TrainConfig.trainer_args_from_keys, "max_length": "max_length",
                                                        "center_rewards_coefficient": "center_rewards"}

    @model_validator(mode="after")
    def gate_needs_eval(self):
        if self.min_accuracy is not None and not self.eval.enabled:
            raise ValueError("min_accuracy needs the held-out evaluation: remove min_accuracy or set eval.enabled=true")
        return self


def inputs(cfg: Config) -> dict[str, list[str]]:
    return stage_inputs(cfg)


def run(cfg: Config, ctx: StageContext) -> StageResult:
    # Rows are checked before TRL is imported (seconds): a row in the wrong shape fails at once.
    eval_ref = cfg.held_out_data()
    train = comparisons(ctx.data(cfg.data).rows, cfg.data, cfg)
    held_out = comparisons(ctx.data(eval_ref).rows[: cfg.eval.max_samples], eval_ref, cfg) if eval_ref else []

    from llmpost.models.load import load_tokenizer
    from llmpost.models.save import save_model
    from llmpost.rewards.reward_model import preference_report, score_sequences
    from llmpost.stages.scoring_head import scorer_to_train
    from llmpost.stages.training import quiet, report_callback, resume_checkpoint

    src = ctx.model(cfg.model)
    args = build_rm_args(cfg, ctx, src.is_tiny)  # before loading: a bad `trainer:` key fails fast

    tokenizer = load_tokenizer(src, cfg.trust_remote_code)
    model = scorer_to_train(src, cfg, kind="seqcls")
    if not cfg.qlora:  # a 4-bit model is placed when loaded; evaluate where training will run
        model.to(args.device)
    train_rows, dropped = encode(train, tokenizer, cfg.max_length)
    if dropped:
        ctx.console.print(f"[yellow]note:[/yellow] {dropped} pair(s) longer than max_length={cfg.max_length} tokens were left out")
    held_rows, _ = encode(held_out, tokenizer, max_length=None)

    def evaluate(m) -> tuple[dict, list[float]]:
        """The held-out report, and each prompt's accuracy (for the intervals)."""
        flat = score_sequences(m, [ids for row in held_rows for ids in row["response_ids"]], cfg.eval.batch_size or FIXED_BATCH)
        rewards, start = [], 0
        for g in held_out:
            rewards.append(flat[start : start + len(g.responses)])
            start += len(g.responses)
        return preference_report(held_out, rewards), prompt_accuracies(held_out, rewards)

    before, before_by_prompt = evaluate(model) if held_out else (None, [])
    trainer = quiet(ranking_trainer_class()(model=model, args=args, train_dataset=as_dataset(train_rows),
                                               processing_class=tokenizer, callbacks=[report_callback(ctx, "rm")]))
    runtime = trainer.train(resume_from_checkpoint=resume_checkpoint(ctx)).metrics["train_runtime"]
    after, after_by_prompt = evaluate(trainer.model) if held_out else (None, [])

    report = {"accuracy_before": before and before["accuracy"], **(after or {}),
              **accuracy_intervals(before_by_prompt, after_by_prompt), "eval_data": eval_ref if after else None}
    final_loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None)
    check_gate(cfg, report, ctx)
    save_model(trainer.model, tokenizer, ctx.out_dir / "model", src)
    headline = ("accuracy_before", "accuracy", "accuracy_top", "accuracy_across_prompts", "mean_margin", "reward_mean",
                "reward_std", "length_corr", "accuracy_ci", "accuracy_delta", "accuracy_delta_ci")
    metrics = {k: report.get(k) for k in headline} | {"train_loss": final_loss, "steps": trainer.state.global_step,
                                                    "train_runtime_s": round(runtime, 2)}
    return StageResult(metrics={k: v for k, v in metrics.items() if v is not None}, eval=report if after else None,
                       card=usage(ctx.name))


def build_rm_args(cfg: Config, ctx: StageContext, is_tiny: bool):
    from trl import RewardConfig

    from llmpost.stages.trainer_args import build_args

    # max_length is applied by `encode` (whole responses are dropped, never cut), not by TRL.
    return build_args(RewardConfig, cfg, ctx.work_dir, is_tiny=is_tiny,
                      from_keys=dict(max_length=None, center_rewards_coefficient=cfg.center_rewards or None),
                      eval_strategy="no", dataset_num_proc=None)


# --- data ------------------------------------------------------------------------------------


def comparisons(rows: list[dict], source: str, cfg: Config):
    """Preference rows as per-prompt comparison groups (see the module docstring)."""
    from llmpost.data.preferences import rankings_to_pairs, to_rankings
    from llmpost.errors import DataError
    from llmpost.rewards.reward_model import group_by_prompt

    pairs = rankings_to_pairs(to_rankings(rows, source), expand=cfg.pairs, margin_from_scores=cfg.margin_from_scores)
    if not pairs:
        raise DataError(f"{source}: no preference pairs (every ranking is a tie)",
                        hint="a ranking needs at least two responses of different rank")
    return group_by_prompt(pairs)


def encode(groups, tokenizer, max_length: int | None) -> tuple[list[dict], int]:
    """Tokenize each group's responses after its prompt; drop responses over `max_length` tokens.

    Returns the training rows and how many pairs were dropped. A group that lost pairs
    has its remaining weights renormalised (the prompt still counts once); a group
    left with none is skipped.
    """
    from llmpost.rewards.reward_model import reward_input_ids

    rows, dropped = [], 0
    for g in groups:
        ids = [reward_input_ids(tokenizer, g.prompt, text) for text in g.responses]
        keep = [k for k, (b, w) in enumerate(zip(g.better, g.worse, strict=True))
                if max_length is None or max(len(ids[b]), len(ids[w])) <= max_length]
        dropped += len(g.better) - len(keep)
        if not keep:
            continue
        total = sum(g.weight[k] for k in keep)
        rows.append({"response_ids": ids, "better": [g.better[k] for k in keep], "worse": [g.worse[k] for k in keep],
                     "weight": [g.weight[k] / total for k in keep], "margin": [g.margin[k] for k in keep]})
    return rows, dropped


def as_dataset(rows: list[dict]):
    from datasets import Dataset

    from llmpost.errors import DataError

    if not rows:
        raise DataError("no training pairs left: every response is longer than max_length",
                        hint="raise max_length (--set max_length=...)")
    return Dataset.from_list(rows)


# --- model -----------------------------------------------------------------------------------


def ranking_loss(rewards, better, worse, weight, margin):
    """Weighted Bradley-Terry loss over index pairs into `rewards`; returns (loss, accuracy, mean margin)."""
    import torch.nn.functional as F

    diff = rewards[better] - rewards[worse]
    total = weight.sum()
    loss = (weight * -F.logsigmoid(diff - margin)).sum() / total
    accuracy = (weight * (diff > 0).float()).sum() / total
    return loss, accuracy.detach(), ((weight * diff).sum() / total).detach()


def collate(groups: list[dict], pad_id: int, multiple_of: int | None = None) -> dict:
    """One batch: every response of every group, padded on the right; pair indices offset to match."""
    import torch

    from llmpost.evaluation.rows import pad_rows

    sequences, better, worse, weight, margin = [], [], [], [], []
    for g in groups:
        offset = len(sequences)
        sequences += g["response_ids"]
        better += [offset + i for i in g["better"]]
        worse += [offset + i for i in g["worse"]]
        weight += g["weight"]
        margin += g["margin"]
    input_ids, attention_mask = pad_rows(sequences, pad_id, left=False, multiple_of=multiple_of)
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "better": torch.tensor(better), "worse": torch.tensor(worse),
            "weight": torch.tensor(weight, dtype=torch.float), "margin": torch.tensor(margin, dtype=torch.float)}


@cache
def ranking_trainer_class():
    """TRL's RewardTrainer with one prompt's ranked responses per example and the weighted ranking loss.

    Built on first use, so importing this module does not import TRL.
    """
    import torch
    from trl import RewardTrainer

    class RankingRewardTrainer(RewardTrainer):
        _tag_names = ["trl", "reward-trainer", "llmpost"]

        def __init__(self, *args, **kwargs):
            pad_id = kwargs["processing_class"].pad_token_id
            kwargs.setdefault("data_collator", lambda groups: collate(groups, pad_id, self.args.pad_to_multiple_of))
            super().__init__(*args, **kwargs)
            # TRL casts a 4-bit model's trainable weights to bf16 (as the QLoRA paper does); the score
            # head stays fp32: its input is fp32 without autocast, and a reward needs the precision.
            for name, param in self.model.named_parameters():
                if param.requires_grad and ".score." in name:
                    param.data = param.data.float()

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # tokenized and length-filtered by `encode`

        def _set_signature_columns_if_needed(self):
            if self._signature_columns is None:
                self._signature_columns = ["response_ids", "better", "worse", "weight", "margin"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if self.model.training else "eval"
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
            rewards = outputs.logits.squeeze(-1)
            loss, accuracy, margin = ranking_loss(rewards, inputs["better"], inputs["worse"], inputs["weight"],
                                                  inputs["margin"])
            if self.args.center_rewards_coefficient is not None:
                loss = loss + self.args.center_rewards_coefficient * torch.mean(rewards**2)
            if mode == "train":
                self._total_train_tokens += self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            metrics = self._metrics[mode]
            metrics["num_tokens"] = [self._total_train_tokens]
            gathered = self.accelerator.gather(rewards.detach())
            metrics["mean_reward"].append(gathered.mean().item())
            metrics["min_reward"].append(gathered.min().item())
            metrics["max_reward"].append(gathered.max().item())
            metrics["accuracy"].append(self.accelerator.gather_for_metrics(accuracy).mean().item())
            metrics["margin"].append(self.accelerator.gather_for_metrics(margin).mean().item())
            return (loss, outputs) if return_outputs else loss

    return RankingRewardTrainer


# --- held-out accuracy intervals ---------------------------------------------------------------


def prompt_accuracies(groups, rewards: list[list[float]]) -> list[float]:
    """Each held-out prompt's share of its pairs ranked right, by pair weight.

    A prompt's pair weights sum to 1, so `accuracy` (`preference_report`) is the mean of these.
    """
    return [sum(w for b, worse, w in zip(g.better, g.worse, g.weight, strict=True) if r[b] > r[worse])
            for g, r in zip(groups, rewards, strict=True)]


def accuracy_intervals(before: list[float], after: list[float]) -> dict:
    """95% intervals of held-out accuracy before and after training, and of its change, resampling prompts.

    A prompt's pairs share its responses and so are not independent of each other: the
    prompts are the items to resample (a Wilson interval over pairs would be too narrow).
    """
    from llmpost.evaluation.report import change, rounded
    from llmpost.evaluation.stats import bootstrap_interval

    if not (before and after):
        return {}
    return {"accuracy_before_ci": rounded(bootstrap_interval(before)), "accuracy_ci": rounded(bootstrap_interval(after)),
            **change("accuracy", list(zip(before, after, strict=True)))}


# --- gate and card ----------------------------------------------------------------------------


def check_gate(cfg: Config, report: dict, ctx: StageContext) -> None:
    """Raise StageFailed when held-out accuracy is below `min_accuracy`, keeping the report to inspect."""
    from llmpost.errors import StageFailed

    accuracy = report.get("accuracy")
    if cfg.min_accuracy is None or accuracy is None or accuracy >= cfg.min_accuracy:
        return
    kept = ctx.work_dir / GATE_REPORT_DIR
    kept.mkdir(parents=True, exist_ok=True)
    (kept / "eval.json").write_text(json.dumps(report, indent=2, default=str))
    if (ctx.out_dir / "metrics.jsonl").is_file():
        shutil.copy(ctx.out_dir / "metrics.jsonl", kept / "metrics.jsonl")
    why = "below chance: are chosen and rejected swapped? " if accuracy < 0.5 else ""
    raise StageFailed(
        f"reward model failed the quality gate: held-out pairwise accuracy {accuracy:.3f} < min_accuracy "
        f"{cfg.min_accuracy:.3f} (before training {report['accuracy_before']:.3f}; {report['n_pairs']} pairs of "
        f"{report['n_prompts']} prompts in {report['eval_data']}). No artifact was written; `{ctx.name}` latest "
        f"is unchanged. Report: {kept}/eval.json",
        hint=f"{why}near 0.5 means the labels carry no signal (check the data) or training was too short "
             "(raise --max-steps/--epochs); metrics.jsonl beside the report shows the training curve",
    )


def usage(name: str) -> str:
    return "\n".join([
        "A reward model: one score per (prompt, response), higher = better.",
        "",
        "```bash",
        f"llmpost score {name} --data builtin:arith-rankings:test      # scores + pairwise accuracy",
        f"llmpost score {name} --data rows.jsonl --output scored.jsonl  # prompt+completion rows",
        "```",
        "",
        "In Python: `llmpost.rewards.reward_model.RewardModelScorer(REF, store).score(prompts, completions)`.",
        "With plain transformers/peft, load `model/` with `AutoModelForSequenceClassification` (full model) or",
        "`peft.AutoPeftModelForSequenceClassification` (adapter + score head); feed the chat-templated",
        "conversation ending with the response; the reward is `logits[:, 0]`.",
    ])
