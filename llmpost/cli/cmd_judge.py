"""`llmpost judge`: sample responses, have an LLM judge compare them, write a preference dataset."""

from __future__ import annotations

from typing import Annotated

import typer

from llmpost.cli.options import (
    PRECEDENCE,
    ConfigOpt,
    OutOpt,
    PrintConfigOpt,
    ReportToOpt,
    SeedOpt,
    SetOpt,
    StoreOpt,
)
from llmpost.cli.stage_runner import run_stage_command
from llmpost.errors import ConfigError
from llmpost.judges.settings import judge_target_flags

PolicyOpt = Annotated[str | None, typer.Option("--policy", "-p", help="Model to sample responses from (artifact ref, 'tiny', path, hub id). Omit to judge the responses already in --prompts.")]
PromptsOpt = Annotated[str | None, typer.Option("--prompts", "--data", "-d", help="Prompts (+answers) to sample for, or rows with responses (prompt+responses, prompt+chosen+rejected).")]
JudgeOpt = Annotated[str | None, typer.Option("--judge", "-j", help="The judge: a model ref (artifact, path, hub id) or the base URL of an OpenAI-compatible API (http://HOST:PORT/v1).")]
JudgeModelOpt = Annotated[str | None, typer.Option("--judge-model", help="With an HTTP judge: the model name to request (default: the server's only model).")]
ApiKeyEnvOpt = Annotated[str | None, typer.Option("--api-key-env", help="NAME of the environment variable holding the judge's API key (the key is never stored).")]
SamplesOpt = Annotated[int | None, typer.Option("--samples", "-n", help="Responses sampled per prompt.")]
MaxPromptsOpt = Annotated[int | None, typer.Option("--max-prompts", help="Use only the first N prompts.")]
OutputOpt = Annotated[str | None, typer.Option("--output", help="Rows to write: rankings (Copeland, per prompt) or pairs.")]
RankByOpt = Annotated[list[str] | None, typer.Option("--rank-by", help="Instead of a judge: rank the responses by a verifiable reward (repeatable, summed), e.g. exact_match against the prompts' answers.")]
PrincipleOpt = Annotated[list[str] | None, typer.Option("--principle", help="A principle the judge applies (repeatable); numbered into the prompt.")]


def register(app: typer.Typer) -> None:
    @app.command(
        help="RLAIF: sample N responses per prompt, have an LLM judge compare every pair in both orders, "
             "and write a preference dataset (rankings or pairs) that `llmpost rm` and `llmpost dpo` take by ref. "
             "With --rank-by, a verifiable reward ranks them instead (a policy's own answers, ranked by exact match). "
             f"{PRECEDENCE}",
        epilog="Example: llmpost sft --model sft --data builtin:arith-judge --out judge-model --batch-size 16 "
               "--set max_steps=2000 --set learning_rate=1e-3 "
               "--set eval.enabled=false && llmpost judge --policy sft --prompts builtin:arith-prompts:train "
               "--judge judge-model --samples 4 --max-prompts 200 --out prefs",
    )
    def judge(policy: PolicyOpt = None, prompts: PromptsOpt = None, judge: JudgeOpt = None,
              judge_model: JudgeModelOpt = None, api_key_env: ApiKeyEnvOpt = None, samples: SamplesOpt = None,
              max_prompts: MaxPromptsOpt = None, output: OutputOpt = None, rank_by: RankByOpt = None,
              principle: PrincipleOpt = None,
              out: OutOpt = None, seed: SeedOpt = None, report_to: ReportToOpt = None, config: ConfigOpt = None,
              set_: SetOpt = None, print_config: PrintConfigOpt = False, store: StoreOpt = None):
        flags = {"policy": policy, "prompts": prompts, "samples": samples, "max_prompts": max_prompts,
                 "output": output, "rank_by": rank_by or None, "out": out, "seed": seed, "report_to": report_to, **judge_target_flags(judge),
                 "judge.api_key_env": api_key_env, "judge.principles": principle or None}
        if judge_model is not None:
            if "judge.model" in flags:
                raise ConfigError([f"--judge-model goes with an HTTP judge, but --judge {judge} is a model ref"],
                                  hint="use --judge http://HOST:PORT/v1 --judge-model NAME, or just --judge MODEL_REF")
            flags["judge.model"] = judge_model
        run_stage_command("judge", flags=flags, config_file=config, sets=set_, print_config=print_config, store=store)
