"""`llmpost judge`: RLAIF — an LLM judge turns sampled responses into a preference dataset.

run(): resolve inputs -> responses (sampled from the policy, or read from the
data) -> every pair judged in both orders (local model or OpenAI-compatible
endpoint, through the on-disk cache), or every pair decided by a verifiable reward
(`rank_by`) -> Copeland rankings or pairs -> data/
train.jsonl + test.jsonl, judgments.jsonl, the judging report (eval.json) and its
headline figures as one metrics.jsonl row, at the number of judgments made (which is
what `report_to`'s trackers get).
`llmpost rm --data NAME` and `llmpost dpo --data NAME` read the result by ref.

`rank_by` ranks a policy's own answers where the truth is known (exact match against
the `answer` column, tests that pass): a reward model trained on those rankings
learns what the policy's right answers look like, in the policy's own words. A reward
model trained on someone else's answers may not carry over to them.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, field_validator

from llmpost.config.base import ReportTo, Strict, report_to_field
from llmpost.errors import ConfigError, DataError, StageFailed
from llmpost.judges.settings import JudgeSettings
from llmpost.stages.context import StageContext, StageResult

EXAMPLES = 8  # judged pairs shown in eval.json


class Config(Strict):
    policy: str | None = Field(None, description="model to sample responses from (artifact ref, 'tiny', path, hub id); null = responses come from `prompts`")
    prompts: str = Field("builtin:arith-prompts:train", description="prompts (+answers) to sample for; without a policy, rows holding responses (prompt+responses, prompt+chosen+rejected, ...)")
    judge: JudgeSettings = Field(default_factory=JudgeSettings, description="who judges and how: a local model or an OpenAI-compatible endpoint")
    rank_by: list[str] = Field(default_factory=list, description="instead of a judge: verifiable rewards (summed) that rank the responses, e.g. [exact_match] against the prompts' `answer` column; a pair goes to the higher total, equal totals tie")
    samples: int = Field(4, ge=2, description="responses sampled per prompt (duplicates are judged once)")
    max_prompts: int | None = Field(None, ge=1, description="use at most this many prompts (the first ones); null = all")
    max_new_tokens: int = Field(64, ge=1, description="longest sampled response")
    temperature: float = Field(1.0, gt=0, description="policy sampling temperature; higher = more varied responses")
    top_p: float = Field(1.0, gt=0, le=1, description="policy nucleus sampling")
    batch_size: int = Field(64, ge=1, description="prompts sampled at once")
    output: Literal["rankings", "pairs"] = Field("rankings", description="rows to write: Copeland rankings per prompt, or the decided pairs")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="share of prompts written to data/test.jsonl instead of train")
    out: str | None = Field(None, description="artifact name to write (a new version NAME/vN); default 'judge'")
    seed: int = Field(0, description="random seed for sampling and the train/test split")
    qlora: bool = Field(False, description="load the policy in 4-bit NF4 for sampling")
    trust_remote_code: bool = Field(False, description="allow the policy's repo to run its own code")
    report_to: ReportTo = report_to_field()

    @field_validator("rank_by")
    @classmethod
    def known_rewards(cls, specs: list[str]) -> list[str]:
        """Every rank_by spec is known and well-formed, before any model loads; none means ask the judge."""
        from llmpost.rewards.registry import check_reward_specs

        return check_reward_specs(specs, required=False)


def inputs(cfg: Config) -> dict[str, list[str]]:
    """The policy and a local judge model (or the models `rank_by` reads) are parents of the dataset; the prompts are its data."""
    models = [cfg.policy] if cfg.policy else []
    if cfg.rank_by:
        from llmpost.rewards.registry import reward_model_refs

        if cfg.judge.configured:
            raise ConfigError(["judge and rank_by are both given: the responses are ranked by one or the other"],
                              hint="drop --judge to rank by the rewards, or drop --rank-by to ask the judge")
        return {"models": models + reward_model_refs(cfg.rank_by), "data": [cfg.prompts]}
    if not cfg.judge.configured:
        raise ConfigError(["judge: no judge given"],
                          hint="pass --judge MODEL_REF (e.g. a model trained with `llmpost sft --data builtin:arith-judge`), "
                               "--judge http://HOST:PORT/v1 --judge-model NAME, or --rank-by exact_match to rank by a "
                               "verifiable reward")
    if cfg.judge.backend == "local":
        models.append(cfg.judge.model)
    else:
        from llmpost.judges.http import read_api_key

        read_api_key(cfg.judge.api_key_env)  # a missing key fails now, not after sampling
    return {"models": models, "data": [cfg.prompts]}


def run(cfg: Config, ctx: StageContext) -> StageResult:
    from llmpost.judges.aggregate import preference_rows, split_groups, summarize
    from llmpost.judges.backend import Usage
    from llmpost.judges.compare import round_robin

    if not cfg.policy:
        check_has_responses(ctx.data(cfg.prompts).rows[0], cfg.prompts)
    reward = ranking_reward(cfg, ctx)  # a missing column fails before sampling
    groups, sampled = collect_groups(cfg, ctx)
    tasks = [t for g, group in enumerate(groups) for t in round_robin(g, group.prompt, group.responses)]
    if reward:
        from llmpost.judges.by_reward import reward_pairs, reward_totals

        outcomes, judgments = reward_pairs(tasks, reward_totals(groups, reward, cfg.prompts)), []
        usage, judge_name = Usage("rank_by"), "rank_by:" + "+".join(reward.names)
    else:
        outcomes, judgments, usage = ask_judge(cfg, ctx, tasks)
        judge_name = usage.backend

    report = summarize(groups, outcomes, judgments)
    check_failures(report, judgments, cfg.judge.max_error_rate)
    rows = preference_rows(groups, outcomes, cfg.output)
    train, test = split_groups(rows, cfg.test_fraction, cfg.seed)
    if not train and reward:
        raise StageFailed(f"no prompt's responses earned different rewards ({report['pairs_judged']} pairs tied), "
                          "so there is no preference to write",
                          hint="sample more responses per prompt (samples), at a higher temperature, or over more prompts")
    if not train:
        replies = "; ".join(repr(j.reply) for j in judgments[:3])
        raise StageFailed(f"the judge decided no pair ({json.dumps(report['outcomes'])}), so there is no preference "
                          f"to write; its first replies: {replies or 'none'}",
                          hint="a judge must name A or B, the same response in both orders; check judge.model and "
                               "judge.template (see `llmpost judge --help`)")
    write_jsonl(ctx.out_dir / "data" / "train.jsonl", train)
    if test:
        write_jsonl(ctx.out_dir / "data" / "test.jsonl", test)
    write_jsonl(ctx.out_dir / "judgments.jsonl", [judgment_record(j) for j in judgments])

    report = {**report, "judge": judge_name, "policy": cfg.policy, "prompts": len(groups),
              "responses": sum(len(g.responses) for g in groups), "sampled": sampled,
              "rows": {"train": len(train), "test": len(test), "format": cfg.output,
                       "prompts_without_preference": sum(1 for r in rows if not r)},
              "tokens": {usage.backend: usage.as_dict()},
              "examples": examples(groups, judgments)}
    metrics = headline(report, usage)
    ctx.metrics_log().write(len(judgments) or len(tasks), metrics)
    return StageResult(metrics=metrics, eval=report, card=usage_card(ctx, cfg))


def ranking_reward(cfg: Config, ctx: StageContext):
    """The rewards that rank the responses (`rank_by`), checked against the prompts' columns; None to ask a judge."""
    if not cfg.rank_by:
        return None
    from llmpost.data.formats import to_prompts
    from llmpost.rewards.registry import CombinedReward

    reward = CombinedReward(cfg.rank_by, ctx.store)
    rows = ctx.data(cfg.prompts).rows[: cfg.max_prompts]
    reward.check_rows(to_prompts(rows, cfg.prompts) if cfg.policy else rows, cfg.prompts)
    return reward


def ask_judge(cfg: Config, ctx: StageContext, tasks):
    """Every pair asked in both orders of the configured judge: (outcomes, judgments, usage)."""
    from llmpost.judges.backend import open_judge
    from llmpost.judges.compare import judge_pairs
    from llmpost.reporting.progress import ProgressBar

    judge_src = ctx.model(cfg.judge.model) if cfg.judge.backend == "local" else None
    judge = open_judge(cfg.judge, model_source=judge_src, cache_root=ctx.store.root)
    try:
        with ProgressBar(ctx.console, "judge", total=2 * len(tasks)) as bar:
            outcomes, judgments = judge_pairs(judge, cfg.judge, tasks, progress=bar.advance)
    finally:
        judge.close()
    return outcomes, judgments, judge.usage


def collect_groups(cfg: Config, ctx: StageContext):
    """The prompts with their distinct responses (sampled from the policy, or read from the data), and the sample count."""
    from llmpost.judges.aggregate import Group

    if cfg.policy:
        return sample_groups(cfg, ctx)
    from llmpost.data.formats import ANSWER_KEYS, has
    from llmpost.data.preferences import to_rankings

    rows = ctx.data(cfg.prompts).rows[: cfg.max_prompts]
    groups = []
    for row, ranking in zip(rows, to_rankings(rows, cfg.prompts), strict=True):
        answer_key = next((k for k in ANSWER_KEYS if has(row, k)), None)
        groups.append(Group(ranking.prompt, distinct(ranking.responses), str(row[answer_key]) if answer_key else None, row))
    return groups, 0


def check_has_responses(row: dict, source: str) -> None:
    """Without a policy the data must carry the responses to judge, in any preference format."""
    from llmpost.data.preferences import holds_responses

    if not holds_responses(row):
        raise DataError(f"{source} holds prompts but no responses, and no --policy was given to sample them",
                        hint="pass --policy MODEL_REF to sample responses, or data with prompt+responses / prompt+chosen+rejected")


def sample_groups(cfg: Config, ctx: StageContext):
    """N sampled responses per prompt from the policy, duplicates dropped; and how many were sampled."""
    from llmpost.data.formats import to_prompts
    from llmpost.evaluation.generation import generate
    from llmpost.judges.aggregate import Group
    from llmpost.judges.local import on_accelerator
    from llmpost.models.load import load_model, load_tokenizer

    src = ctx.model(cfg.policy)
    prompts = to_prompts(ctx.data(cfg.prompts).rows, cfg.prompts)[: cfg.max_prompts]
    tokenizer = load_tokenizer(src, cfg.trust_remote_code)
    model = on_accelerator(load_model(src, qlora=cfg.qlora, trust_remote_code=cfg.trust_remote_code))
    ctx.console.print(f"sampling {cfg.samples} responses for each of {len(prompts)} prompts from {cfg.policy}")
    texts = generate(model, tokenizer, [p["prompt"] for p in prompts for _ in range(cfg.samples)],
                     max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, do_sample=True,
                     temperature=cfg.temperature, top_p=cfg.top_p)
    del model
    groups = [Group(p["prompt"], distinct(texts[k * cfg.samples:(k + 1) * cfg.samples]), p.get("answer"), p)
              for k, p in enumerate(prompts)]
    return groups, len(texts)


def distinct(responses: list[str]) -> list[str]:
    """Responses with surrounding whitespace trimmed and duplicates removed, first occurrence kept."""
    return list(dict.fromkeys(r.strip() for r in responses))


def check_failures(report: dict, judgments, max_error_rate: float) -> None:
    """Stop when more requests failed after retries than the settings accept."""
    rate = report["request_failure_rate"] or 0.0
    if rate > max_error_rate:
        last = next(j.error for j in reversed(judgments) if j.error)
        raise StageFailed(f"the judge failed on {report['request_failures']} of {report['judgments']} requests "
                          f"({rate:.0%}); last error: {last}",
                          hint="check the judge endpoint; raise judge.timeout_s or judge.max_retries, or "
                               "judge.max_error_rate to keep going (failed requests count as ties; answered ones are cached)")


def judgment_record(j) -> dict:
    return {"group": j.group, "first": j.first, "second": j.second, "verdict": j.verdict, "reply": j.reply,
            "error": j.error, "cached": j.cached}


def examples(groups, judgments) -> list[dict]:
    """A few judgments as a reader wants to check them: the question, both answers, the reply."""
    from llmpost.judges.prompts import question_text

    return [{"question": question_text(groups[j.group].prompt), "A": groups[j.group].responses[j.first],
             "B": groups[j.group].responses[j.second], "reply": j.reply, "verdict": j.verdict, "error": j.error}
            for j in judgments[:EXAMPLES]]


def headline(report: dict, usage) -> dict:
    """The manifest's summary metrics (what `llmpost ls` shows)."""
    truth = report["ground_truth"] or {}
    metrics = {
        "position_consistency": report["position_consistency"],
        "tie_rate": report["tie_rate"],
        "parse_failure_rate": report["parse_failure_rate"],
        "request_failure_rate": report["request_failure_rate"],
        "ground_truth_agreement": truth.get("agreement"),
        "pairs_judged": report["pairs_judged"],
        "rows_train": report["rows"]["train"],
        "rows_test": report["rows"]["test"],
        "judge_requests": usage.requests,
        "judge_cache_hits": usage.cache_hits,
        "judge_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    return {k: v for k, v in metrics.items() if v is not None}


def usage_card(ctx: StageContext, cfg: Config) -> str:
    name = ctx.name
    start = cfg.policy or "MODEL"
    return "\n".join([
        "A preference dataset written by an LLM judge (`data/train.jsonl`, `data/test.jsonl`);",
        "every judgment, with the judge's raw reply, is in `judgments.jsonl`.",
        "",
        "```bash",
        f"llmpost dpo --model {start} --data {name}",
        f"llmpost rm --data {name}",
        "```",
    ])


def write_jsonl(path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

