"""A training stage's held-out evaluation: the rows it answers, before and after training.

    held_out = HeldOut(held_out_prompts(ctx, cfg), tokenizer, cfg.eval, start_outputs(src, cfg))
    before = held_out.before(model)         # the start model's own answers where it has them
    ...train...
    after = held_out.after(trainer.model)

Both return None when there is nothing to evaluate. The figures and files built from the
two evaluations are `evaluation/report.py`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmpost.config.base import EvalSettings, TrainConfig
from llmpost.stages.context import StageContext


@dataclass
class HeldOut:
    rows: list[dict]  # prompt rows (`to_prompts` shape); empty: no evaluation
    tokenizer: Any
    settings: EvalSettings
    start: dict[str, str] = field(default_factory=dict)  # the start model's own answers (`start_outputs`)
    reward: Any = None  # the stage's reward (`CombinedReward`), scoring each answer; None: none

    def before(self, model):
        """The start model's evaluation; the answers it already gave are checked and scored, not generated."""
        return self.evaluate(model, self.start)

    def after(self, model):
        return self.evaluate(model, None)

    def evaluate(self, model, known_outputs: dict[str, str] | None):
        from llmpost.evaluation.heldout import evaluate

        if not self.rows:
            return None
        return evaluate(model, self.tokenizer, self.rows[: self.settings.max_samples],
                        max_new_tokens=self.settings.max_new_tokens, batch_size=self.settings.batch_size,
                        reward=self.reward, known_outputs=known_outputs)


def held_out_prompts(ctx: StageContext, cfg: TrainConfig) -> list[dict]:
    """The held-out prompt rows (`cfg.held_out_data()`), or none when the evaluation is off."""
    from llmpost.data.formats import to_prompts

    ref = cfg.held_out_data()
    return to_prompts(ctx.data(ref).rows, ref) if ref else []


def start_outputs(src, cfg) -> dict[str, str]:
    """The start model's own greedy answers to held-out prompts, so "before" need not generate them again.

    When the model a stage starts from is an artifact that evaluated itself at the end of its
    training (eval_items.jsonl, phase "after") with the same generation budget, those answers are
    what the stage's "before" evaluation would generate: the same weights, greedy decoding. Not
    when either side loads the base in 4 bits (`qlora`): the weights then differ from those that
    answered. Returns {prompt id: output}; empty when there is nothing to reuse.
    """
    from llmpost.evaluation.report import read_items

    artifact = src.artifact
    if artifact is None or cfg.qlora:
        return {}
    start_cfg = artifact.manifest.get("config") or {}
    start_eval = start_cfg.get("eval")
    if start_cfg.get("qlora") or not isinstance(start_eval, dict):
        return {}
    if start_eval.get("max_new_tokens") != cfg.eval.max_new_tokens:
        return {}
    return {item.id: item.output for item in read_items(artifact.path, "after") or []}
