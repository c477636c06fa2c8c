"""A training stage's held-out evaluation: the rows it answers, before and after training.

    held_out = HeldOut.of(cfg, src, held_out_prompts(ctx, cfg), tokenizer)
    before = held_out.before(model)         # the start model's own answers where it has them
    ...train...
    after = held_out.after(trainer.model)

Both return None when there is nothing to evaluate. The figures and files built from the
two evaluations are `evaluation/report.py`'s.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmpost.config.base import EvalSettings, TrainConfig
from llmpost.files import write_text
from llmpost.stages.context import StageContext


@dataclass
class HeldOut:
    rows: list[dict]  # prompt rows (`to_prompts` shape); empty: no evaluation
    tokenizer: Any
    settings: EvalSettings
    max_new_tokens: int  # the generation budget (`TrainConfig.eval_tokens`)
    start: dict[str, str] = field(default_factory=dict)  # the start model's own answers (`start_outputs`)
    reward: Any = None  # the stage's reward (`CombinedReward`), scoring each answer; None: none
    keep_start: Path | None = None  # where the start model's answers are kept for the next stage (`base_answers`)

    @classmethod
    def of(cls, cfg: TrainConfig, src, rows: list[dict], tokenizer, reward=None) -> HeldOut:
        """A stage's evaluation of `rows`, with its settings and budget, reusing its start model's answers."""
        budget = cfg.eval_tokens(src.is_tiny)
        kept = base_answers(src, cfg.qlora, budget) if rows else None
        start = start_outputs(src, cfg) if kept is None else read_answers(kept)
        return cls(rows, tokenizer, cfg.eval, budget, start, reward, kept)

    def before(self, model):
        """The start model's evaluation; the answers it already gave are checked and scored, not generated."""
        result = self.evaluate(model, self.start)
        if result is not None and self.keep_start is not None:
            keep_answers(self.keep_start, self.start, result)
        return result

    def after(self, model):
        """The trained model's evaluation, in the precision it was evaluated in before training."""
        return self.evaluate(without_autocast(model), None)

    def evaluate(self, model, known_outputs: dict[str, str] | None):
        from llmpost.evaluation.heldout import evaluate

        if not self.rows:
            return None
        return evaluate(model, self.tokenizer, self.rows[: self.settings.max_samples],
                        max_new_tokens=self.max_new_tokens, batch_size=self.settings.batch_size,
                        reward=self.reward, known_outputs=known_outputs)


def without_autocast(model):
    """`model` with the mixed-precision wrapper that training put on its forward taken off.

    Under bf16, accelerate wraps the trained model's forward in autocast, and it stays wrapped
    after training: the model evaluated after would compute in bf16 where the one evaluated
    before computed in its own precision, and the paired change would mix training with a
    change of arithmetic. A saved model is loaded without the wrapper too.
    """
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(model, keep_fp32_wrapper=False)


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
    if (artifact.manifest.get("config") or {}).get("qlora"):
        return {}
    if recorded_budget(artifact) != cfg.eval_tokens(src.is_tiny):
        return {}
    return {item.id: item.output for item in read_items(artifact.path, "after") or []}


def recorded_budget(artifact) -> int | None:
    """The generation budget of an artifact's own held-out evaluation; None when it ran none.

    eval.json records it; an artifact from before it did has it in its config, where it was
    always set.
    """
    try:
        report = json.loads((artifact.path / "eval.json").read_text())
    except (OSError, ValueError):
        report = {}
    if report.get("max_new_tokens") is not None:
        return report["max_new_tokens"]
    start_eval = (artifact.manifest.get("config") or {}).get("eval")
    return start_eval.get("max_new_tokens") if isinstance(start_eval, dict) else None


def base_answers(src, qlora: bool, budget: int) -> Path | None:
    """Where a base model's greedy held-out answers are kept between stages; None where they cannot be.

    The stages of a flow often start from the same base model (a recipe's grpo, dpo and ppo on
    SmolLM2), and each "before" evaluation would generate the same answers again: minutes a
    stage on a CPU. A base model is no artifact to keep them in, so they go to
    `$LLMPOST_CACHE/answers/`, keyed by what decides them: the model directory's files (names,
    sizes, modification times), the revision, 4-bit loading and the generation budget. Only
    for local directories (a converted GGUF file is one): a hub id's weights could change
    unseen. Tiny is quick to evaluate and is left out.
    """
    from llmpost.models.gguf import llmpost_cache

    if src.artifact is not None or src.adapter_path or src.is_tiny or not Path(src.path).is_dir():
        return None
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(src.path).iterdir() if p.is_file())
    key = json.dumps({"path": str(Path(src.path).resolve()), "files": files, "revision": src.revision,
                      "qlora": qlora, "max_new_tokens": budget}, sort_keys=True)
    return llmpost_cache() / "answers" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def read_answers(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def keep_answers(path: Path, known: dict[str, str], evaluation) -> None:
    """Keep `evaluation`'s answers at `path` with those `known` before it (`base_answers`)."""
    write_answers(path, known | {item.id: item.output for item in evaluation.items})


def write_answers(path: Path, answers: dict[str, str]) -> None:
    """Write atomically: a stage killed mid-write leaves the old file, never half of one."""
    write_text(path, json.dumps(answers))
