"""`llmpost rm` (train a reward model from rankings) and `llmpost score` (score responses with one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from llmpost.cli.options import QloraOpt, StoreOpt
from llmpost.cli.stage_runner import console
from llmpost.cli.training_command import TrainingOptions, training_command

MinAccuracyOpt = Annotated[float | None, typer.Option(
    "--min-accuracy", help="Quality gate: exit 1, publishing nothing, when held-out pairwise accuracy is below this.")]
EvalDataOpt = Annotated[str | None, typer.Option(
    "--eval-data", help="Held-out preference data for eval.json (default builtin:arith-rankings:test).")]


def register(app: typer.Typer) -> None:
    @app.command(epilog="Example: llmpost rm --model sft --data builtin:arith-rankings --out rm --min-accuracy 0.8 "
                        "--set max_steps=200")
    @training_command()
    def rm(opts: TrainingOptions, min_accuracy: MinAccuracyOpt = None, eval_data: EvalDataOpt = None):
        """Train a reward model (one-output sequence classifier) from ranked or paired preferences,
        each prompt weighted once; report held-out pairwise accuracy, margin and length bias in eval.json."""
        opts.run({"min_accuracy": min_accuracy, "eval.data": eval_data})

    @app.command(epilog="Example: llmpost score rm --data builtin:arith-rankings:test --output scored.jsonl")
    def score(ref: Annotated[str, typer.Argument(help="Reward model: an `llmpost rm` artifact ref, a local dir or a hub id.")],
              data: Annotated[str, typer.Option("--data", "-d", help="Rows to score: prompt+completion (or response), messages, or preference rows (pairs, rankings).")],
              output: Annotated[Path | None, typer.Option("--output", help="Write the scored rows here as JSONL (default: print them to stdout).")] = None,
              batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Sequences scored at once.")] = 32,
              qlora: QloraOpt = None, store: StoreOpt = None):
        """Score responses with a reward model: each row gets `score` (or `scores`, one per ranked response).

        For preference rows it also prints the pairwise accuracy, margin and length bias. With a process
        reward model (`llmpost prm`) each row gets `step_scores`, one per step (line), and `score`, the
        weakest step's; for step-labelled rows it prints step accuracy and first-error localisation.
        """
        from llmpost.artifacts.store import Store
        from llmpost.data.load import load_rows
        from llmpost.models.load import resolve_model
        from llmpost.rewards.process import is_process_reward_model
        from llmpost.rewards.reward_model import report_summary

        the_store = Store.default(store)
        loaded = load_rows(data, artifact_resolver=lambda r: _artifact_dir(the_store, r))
        if is_process_reward_model(resolve_model(ref, the_store)):
            from llmpost.rewards.process import ProcessRewardScorer
            from llmpost.rewards.step_scoring import score_step_rows

            scored, report = score_step_rows(ProcessRewardScorer(ref, the_store, qlora=bool(qlora),
                                                                 batch_size=batch_size), loaded.rows, data)
        else:
            from llmpost.rewards.reward_model import RewardModelScorer, score_rows

            scorer = RewardModelScorer(ref, the_store, qlora=bool(qlora), batch_size=batch_size)
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
