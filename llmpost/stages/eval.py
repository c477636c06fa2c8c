"""`llmpost eval`: the held-out task evaluation on any model, as an artifact of its own.

Reports exact-match accuracy of greedy answers on prompt+answer data, with its 95%
interval, and keeps every answer in eval_items.jsonl.
"""

from __future__ import annotations

from pydantic import Field

from llmpost.config.base import MODEL_EVAL_TOKENS, TINY_EVAL_TOKENS, Strict
from llmpost.stages.context import StageContext, StageResult


class Config(Strict):
    model: str = Field("tiny", description="the model to evaluate: an artifact ref, 'tiny', 'smollm2', a local dir, a .gguf file or a hub id")
    data: str = Field("builtin:arith-prompts:test", description="held-out rows with a prompt and a reference answer")
    out: str | None = Field(None, description="artifact name for the report; default 'eval'")
    seed: int = Field(0, description="random seed")
    qlora: bool = Field(False, description="load the base in 4-bit")
    trust_remote_code: bool = Field(False, description="allow model repos to run their own code")
    max_samples: int = Field(1000, ge=1, description="evaluate on at most this many rows")
    max_new_tokens: int | None = Field(
        None, ge=1, description=f"generation budget per answer; default {TINY_EVAL_TOKENS} on tiny-based models, "
                                f"{MODEL_EVAL_TOKENS} on others"
    )
    batch_size: int = Field(64, ge=1, description="prompts generated at once")


def inputs(cfg: Config) -> dict[str, list[str]]:
    return {"models": [cfg.model], "data": [cfg.data]}


def run(cfg: Config, ctx: StageContext) -> StageResult:
    from llmpost.config.base import eval_budget
    from llmpost.data.formats import to_prompts
    from llmpost.evaluation.heldout import evaluate
    from llmpost.evaluation.report import eval_fields, headline, write_items
    from llmpost.models.load import load_model, load_tokenizer
    from llmpost.stages.heldout import base_answers, keep_answers, read_answers

    src = ctx.model(cfg.model)
    rows = to_prompts(ctx.data(cfg.data).rows, cfg.data)[: cfg.max_samples]
    tokenizer = load_tokenizer(src, cfg.trust_remote_code)
    model = load_model(src, qlora=cfg.qlora, trust_remote_code=cfg.trust_remote_code)
    budget = eval_budget(cfg.max_new_tokens, src.is_tiny)
    kept = base_answers(src, cfg.qlora, budget)  # the answers a training stage's "before" gave, or will reuse
    known = read_answers(kept) if kept else {}
    result = evaluate(model, tokenizer, rows, max_new_tokens=budget, batch_size=cfg.batch_size, known_outputs=known)
    if kept:
        keep_answers(kept, known, result)
    write_items(ctx.out_dir, None, result)  # one model: its items are the "after" phase
    report = eval_fields(None, result, samples=10)
    return StageResult(metrics={**headline(report), "n_eval": report["n_eval"]}, eval=report)


