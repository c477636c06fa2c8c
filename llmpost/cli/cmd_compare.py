"""`llmpost compare A B`: is B better than A on the same held-out items? (The work is in llmpost.pipeline.compare.)"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from llmpost.cli.options import StoreOpt
from llmpost.cli.stage_runner import console, results

COMPARE_HELP = (
    "Compare two models on the same held-out items: each one's exact match with its 95% Wilson interval, "
    "B - A with its paired 95% bootstrap interval (items paired by prompt), and the items that changed "
    "(right->wrong, wrong->right; McNemar).\n\n"
    "A and B are artifact refs (NAME, NAME@vN) or model refs ('tiny', a model dir, a hub id). Held-out data: "
    "--data, else the data A's own evaluation used (else B's, else the built-in test split), as many rows as "
    "that evaluation took.\n\n"
    "An artifact's answers are read from its eval_items.jsonl; items it does not hold, and models that are not "
    "artifacts, are evaluated now. Nothing is written or cached: the artifacts stay as they are, and what is "
    "evaluated is evaluated again on the next call."
)

REF_HELP = "an artifact ref (NAME, NAME@vN), 'tiny', a model dir or a hub id."
RefA = Annotated[str, typer.Argument(metavar="A", help="The model to compare against: " + REF_HELP)]
RefB = Annotated[str, typer.Argument(metavar="B", help="The model compared with A: " + REF_HELP)]


def register(app: typer.Typer) -> None:
    @app.command("compare", help=COMPARE_HELP,
                 epilog="Example: llmpost compare tiny sft --max-samples 50 --json  (`sft`: what `llmpost sft` writes)")
    def compare(
        a: RefA,
        b: RefB,
        data: Annotated[str | None, typer.Option("--data", "-d", help="Held-out rows with a prompt and a reference "
                                                 "answer: a file, builtin:NAME, ...")] = None,
        max_samples: Annotated[int | None, typer.Option("--max-samples", min=1, help="Compare on the first N rows "
                                                        "of the data.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the text.")] = False,
        store: StoreOpt = None,
    ):
        from llmpost.artifacts.store import Store
        from llmpost.pipeline.compare import compare_models

        comparison = compare_models(a, b, Store.default(store), data=data, max_samples=max_samples, console=console)
        if as_json:
            typer.echo(json.dumps(comparison.to_dict(), indent=2))
        else:
            for line in comparison.lines():
                results.print(line, highlight=False, markup=False)
