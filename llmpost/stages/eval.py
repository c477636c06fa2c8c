"""`llmpost eval`: the held-out task evaluation on any model, as an artifact of its own.

Reports exact-match accuracy of greedy answers on prompt+answer data, with its 95%
interval, and keeps every answer in eval_items.jsonl.

With `best_of: N` it also samples N answers to each problem and reports the exact match of
the answer each ranker in `rank_by` picks (majority vote, a reward model, a process reward
model), the oracle's (any sample right) and the paired differences, in eval.json's
`best_of`, with every sample in best_of_items.jsonl (`evaluation/best_of.py`). The rankers
are read and checked here, before any model loads, and loaded one at a time after sampling.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from llmpost.config.base import MODEL_EVAL_TOKENS, TINY_EVAL_TOKENS, Strict
from llmpost.rewards.process import AGGREGATIONS
from llmpost.stages.context import StageContext, StageResult

if TYPE_CHECKING:
    from llmpost.evaluation.best_of import Problem

RANKERS = (f"vote (the majority answer), rm:REF (a reward model), prm:REF[:agg={'|'.join(AGGREGATIONS)}] "
           f"(a process reward model, its step scores aggregated by agg, default {AGGREGATIONS[0]})")


def _comma_separated(value: Any) -> Any:
    """`--rank-by prm:p,rm:r,vote` and `--set rank_by=vote` as a list: each comma-separated part is a ranker."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [part.strip() for v in value for part in v.split(",") if part.strip()]
    return value


RankBy = Annotated[list[str], BeforeValidator(_comma_separated)]


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
    batch_size: int | None = Field(
        None, ge=1, description="prompts generated at once; default 64, or on a CPU's greedy answers as many as fit "
                                "2 GiB of KV cache (at most 256)"
    )
    best_of: int | None = Field(
        None, ge=1, description="also sample N answers per problem and report the one each ranker picks "
                                "(--best-of); None = off"
    )
    rank_by: RankBy = Field(
        default_factory=lambda: ["vote"], description="the rankers of best_of's samples, compared on the same "
                                                       "samples in this order (--rank-by, comma-separated): vote, "
                                                       f"rm:REF, prm:REF[:agg={'|'.join(AGGREGATIONS)}]"
    )
    temperature: float = Field(1.0, gt=0, description="sampling temperature of best_of's answers (--temperature)")

    @field_validator("rank_by")
    @classmethod
    def known_rankers(cls, specs: list[str]) -> list[str]:
        """Every ranker is well-formed and named once, before any model loads."""
        problems = []
        for spec in specs:
            try:
                parse_ranker(spec)
            except ValueError as exc:
                problems.append(str(exc))
        problems += [f"{spec!r} is given twice" for spec in dict.fromkeys(s for s in specs if specs.count(s) > 1)]
        if not specs:
            problems.append("give at least one ranker")
        if problems:
            raise ValueError(f"{'; '.join(problems)}. Rankers: {RANKERS}")
        return specs

    @classmethod
    def refused_keys(cls, data: dict[str, Any]) -> list[str]:
        """Rankers without samples to rank would silently do nothing."""
        if data.get("rank_by") is not None and data.get("best_of") is None:
            return ["rank_by: ranks best-of-N samples; set best_of too (--best-of N)"]
        return []


@dataclass(frozen=True)
class Ranker:
    """One `rank_by` entry: `spec` as the user wrote it (its name in the report), what it is, its model."""

    spec: str
    kind: str  # "vote", "rm" or "prm"
    ref: str | None = None  # the reward model of rm and prm
    agg: str = AGGREGATIONS[0]  # prm: how a solution's step scores become one


def parse_ranker(spec: str) -> Ranker:
    """`vote`, `rm:REF` or `prm:REF[:agg=AGG]` as a `Ranker`; ValueError saying what is wrong otherwise."""
    kind, _, rest = spec.partition(":")
    if kind == "vote":
        if rest:
            raise ValueError(f"ranker {spec!r}: vote takes no model or options; write just `vote`")
        return Ranker(spec, "vote")
    if kind not in ("rm", "prm"):
        close = difflib.get_close_matches(kind, ["vote", "rm", "prm"], n=1, cutoff=0.6)
        raise ValueError(f"unknown ranker {spec!r}" + (f" (did you mean `{close[0]}`?)" if close else ""))
    if not rest:
        raise ValueError(f"ranker {spec!r} needs a model: {kind}:REF, e.g. {kind}:my-{kind}")
    if kind == "rm":
        if ":agg=" in rest:
            raise ValueError(f"ranker {spec!r}: agg is for process reward models (prm:REF:agg=...); "
                             "a reward model gives one score")
        return Ranker(spec, kind, rest)
    from llmpost.errors import ConfigError
    from llmpost.rewards.process_reward import parse_prm_arg

    try:
        ref, agg = parse_prm_arg(rest)  # read as the prm: reward reads it
    except ConfigError as exc:
        raise ValueError(f"ranker {spec!r}: " + "; ".join(exc.problems)) from None
    return Ranker(spec, kind, ref, agg)


def rankers_of(cfg: Config) -> list[Ranker]:
    """The rankers of `cfg`'s best-of-N; none when it is off."""
    return [parse_ranker(spec) for spec in cfg.rank_by] if cfg.best_of else []


def inputs(cfg: Config) -> dict[str, list[str]]:
    """The evaluated model first (the artifact's base), then the rankers' models (parents, in the fingerprint)."""
    return {"models": [cfg.model, *(r.ref for r in rankers_of(cfg) if r.ref)], "data": [cfg.data]}


def run(cfg: Config, ctx: StageContext) -> StageResult:
    from llmpost.config.base import eval_budget
    from llmpost.data.formats import to_prompts
    from llmpost.evaluation.best_of import best_of_metrics, sample_problems
    from llmpost.evaluation.heldout import evaluate
    from llmpost.evaluation.report import eval_fields, headline, write_items
    from llmpost.models.load import load_model, load_tokenizer
    from llmpost.stages.heldout import base_answers, keep_answers, read_answers

    src = ctx.model(cfg.model)  # first: the manifest's base model is the first model resolved
    rankers = rankers_of(cfg)
    check_rankers(rankers, ctx, cfg.trust_remote_code)  # a model that cannot rank fails before any generation
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
    best = None
    if cfg.best_of:
        problems = sample_problems(model, tokenizer, rows, result, cfg.best_of, temperature=cfg.temperature,
                                   max_new_tokens=budget, batch_size=cfg.batch_size, seed=cfg.seed)
        del model  # the rankers' models load next, one at a time
        best = rank_best_of(cfg, ctx, problems, rankers, budget)
    report = eval_fields(None, result, stage={"best_of": best} if best else None, samples=10)
    metrics = {**headline(report), "n_eval": report["n_eval"], **(best_of_metrics(best) if best else {})}
    return StageResult(metrics=metrics, eval=report)


def check_rankers(rankers: list[Ranker], ctx: StageContext, trust_remote_code: bool) -> None:
    """ModelError (exit 2) unless each rm ranker's model is a reward model and each prm's a process reward model."""
    from llmpost.errors import ModelError
    from llmpost.rewards.process import check_process_reward_model
    from llmpost.rewards.reward_model import check_reward_model

    checks = {"rm": check_reward_model, "prm": check_process_reward_model}
    for ranker in rankers:
        if ranker.kind not in checks:
            continue
        try:
            checks[ranker.kind](ctx.model(ranker.ref), trust_remote_code)
        except ModelError as exc:
            raise ModelError(f"rank_by {ranker.spec!r}: {exc.message}",
                             hint="; ".join(filter(None, [exc.hint, f"rankers: {RANKERS}"]))) from None


def rank_best_of(cfg: Config, ctx: StageContext, problems: list[Problem], rankers: list[Ranker], budget: int) -> dict:
    """Each ranker's scores and picks on the sampled `problems`, best_of_items.jsonl, and eval.json's `best_of`."""
    from llmpost.evaluation.best_of import best_of_fields, best_of_table, rank, write_best_of_items

    for ranker in rankers:
        ctx.console.print(f"best of {cfg.best_of}: ranking {len(problems)} problems' samples by {ranker.spec}")
        rank(problems, ranker.spec, ranker_scores(ranker, problems, ctx, cfg.trust_remote_code))
    write_best_of_items(ctx.out_dir, problems)
    fields = best_of_fields(problems, [r.spec for r in rankers], n=cfg.best_of, temperature=cfg.temperature,
                            max_new_tokens=budget)
    ctx.console.print(best_of_table(fields))  # the intervals and differences, which the metrics table leaves out
    return fields


def ranker_scores(ranker: Ranker, problems: list[Problem], ctx: StageContext, trust_remote_code: bool) -> list[list[float]]:
    """`ranker`'s score of every sample of every problem; a reward model is loaded for this and let go after."""
    from llmpost.evaluation.best_of import model_scores, vote_scores

    if ranker.kind == "vote":
        return [vote_scores(p.extracted) for p in problems]
    if ranker.kind == "rm":
        from llmpost.rewards.reward_model import RewardModelScorer

        return model_scores(problems, RewardModelScorer(ranker.ref, ctx.store,
                                                        trust_remote_code=trust_remote_code).score)
    from llmpost.rewards.process import ProcessRewardScorer

    scorer = ProcessRewardScorer(ranker.ref, ctx.store, trust_remote_code=trust_remote_code)
    return model_scores(problems, lambda prompts, completions: scorer.score(prompts, completions, how=ranker.agg))
