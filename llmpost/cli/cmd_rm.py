"""`llmpost rm` (train a reward model from rankings) and `llmpost score` (score responses with one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from llmpost.cli.options import (
    PRECEDENCE,
    BatchOpt,
    ConfigOpt,
    DataOpt,
    DeepspeedOpt,
    EpochsOpt,
    FsdpOpt,
    LauncherOpt,
    LoraOpt,
    LrOpt,
    ModelOpt,
    NumProcessesOpt,
    OutOpt,
    PrintConfigOpt,
    QloraOpt,
    SeedOpt,
    SetOpt,
    StepsOpt,
    StoreOpt,
)
from llmpost.cli.stage_runner import console
from llmpost.cli.train_cmds import common_flags, launch_flags, run_training_command

MinAccuracyOpt = Annotated[float | None, typer.Option(
    "--min-accuracy", help="Quality gate: exit 1, publishing nothing, when held-out pairwise accuracy is below this.")]
EvalDataOpt = Annotated[str | None, typer.Option(
    "--eval-data", help="Held-out preference data for eval.json (default builtin:arith-rankings:test).")]


def register(app: typer.Typer) -> None:
    @app.command(
        help="Train a reward model (one-output sequence classifier) from ranked or paired preferences, "
             "each prompt weighted once; report held-out pairwise accuracy, margin and length bias in eval.json. "
             f"{PRECEDENCE}",
        epilog="Example: llmpost rm --model sft --data builtin:arith-rankings --out rm --min-accuracy 0.8 "
               "--set max_steps=200",
    )
    def rm(model: ModelOpt = None, data: DataOpt = None, out: OutOpt = None, seed: SeedOpt = None,
           epochs: EpochsOpt = None, max_steps: StepsOpt = None, lr: LrOpt = None, batch_size: BatchOpt = None,
           lora: LoraOpt = None, qlora: QloraOpt = None, min_accuracy: MinAccuracyOpt = None,
           eval_data: EvalDataOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
           print_config: PrintConfigOpt = False, store: StoreOpt = None, launcher: LauncherOpt = None,
           num_processes: NumProcessesOpt = None, deepspeed: DeepspeedOpt = None, fsdp: FsdpOpt = None):
        flags = common_flags(model, data, out, seed, epochs, max_steps, lr, batch_size, lora, qlora)
        flags |= {"min_accuracy": min_accuracy, "eval.data": eval_data}
        run_training_command("rm", launch=launch_flags(launcher, num_processes, deepspeed, fsdp), flags=flags,
                             config_file=config, sets=set_, print_config=print_config, store=store)

    @app.command(epilog="Example: llmpost score rm --data builtin:arith-rankings:test --output scored.jsonl")
    def score(ref: Annotated[str, typer.Argument(help="Reward model: an `llmpost rm` artifact ref, a local dir or a hub id.")],
              data: Annotated[str, typer.Option("--data", "-d", help="Rows to score: prompt+completion (or response), messages, or preference rows (pairs, rankings).")],
              output: Annotated[Path | None, typer.Option("--output", help="Write the scored rows here as JSONL (default: print them to stdout).")] = None,
              batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Sequences scored at once.")] = 32,
              qlora: QloraOpt = None, store: StoreOpt = None):
        """Score responses with a reward model: each row gets `score` (or `scores`, one per ranked response).

        For preference rows it also prints the pairwise accuracy, margin and length bias.
        """
        from llmpost.artifacts.store import Store
        from llmpost.data.load import load_rows
        from llmpost.rewards.reward_model import RewardModelScorer, report_summary, score_rows

        the_store = Store.default(store)
        scorer = RewardModelScorer(ref, the_store, qlora=bool(qlora), batch_size=batch_size)
        loaded = load_rows(data, artifact_resolver=lambda r: _artifact_dir(the_store, r))
        scored, report = score_rows(scorer, loaded.rows, data)
        lines = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in scored)
        if output is None:
            sys.stdout.write(lines)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(lines)
            console.print(f"{len(scored)} scored rows written to [bold]{output}[/bold]")
        if report is not None:
            summary = report_summary(report)
            console.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))


def _artifact_dir(store, ref: str):
    artifact = store.try_resolve(ref)
    return artifact.path if artifact is not None else None
