"""`llmpost eval`, `generate`, `export`, `doctor`: looking at and shipping models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmpost.cli.options import ConfigOpt, OutOpt, PrintConfigOpt, SetOpt, StoreOpt
from llmpost.cli.stage_runner import console, run_stage_command


def register(app: typer.Typer) -> None:
    @app.command("eval", epilog="Examples: llmpost eval sft --data builtin:arith-prompts:test ; "
                                "llmpost eval sft --best-of 8 --rank-by prm:prm,rm:rm,vote")
    def eval_(ref: Annotated[str, typer.Argument(help="Model: artifact ref, 'tiny', 'smollm2', local dir, .gguf file or hub id.")],
              data: Annotated[str | None, typer.Option("--data", "-d", help="Held-out rows with prompt + answer.")] = None,
              max_samples: Annotated[int | None, typer.Option(help="Evaluate at most N rows.")] = None,
              best_of: Annotated[int | None, typer.Option("--best-of", min=1, help="Also sample N answers per problem and report the exact match of the one each --rank-by ranker picks, and of any (oracle).")] = None,
              rank_by: Annotated[list[str] | None, typer.Option("--rank-by", metavar="RANKER", help="With --best-of: vote (majority answer), rm:REF (a reward model), prm:REF[:agg=min|prod|last|mean] (a process reward model); comma-separated or repeated, compared on the same samples in this order (default: vote).")] = None,
              temperature: Annotated[float | None, typer.Option("--temperature", help="Sampling temperature of the --best-of answers (default 1.0).")] = None,
              out: OutOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
              print_config: PrintConfigOpt = False, store: StoreOpt = None):
        """Held-out exact-match of a model's greedy answers and, with --best-of, of reranked samples; writes an `eval` artifact."""
        flags = {"model": ref, "data": data, "max_samples": max_samples, "best_of": best_of, "rank_by": rank_by,
                 "temperature": temperature, "out": out}
        run_stage_command("eval", flags=flags, config_file=config, sets=set_, print_config=print_config, store=store)

    @app.command(epilog='Example: llmpost generate sft "Ann has 3 pens and gets 4 more. How many pens does Ann have?"')
    def generate(ref: Annotated[str, typer.Argument(help="Model: artifact ref, 'tiny', 'smollm2', local dir, .gguf file or hub id.")],
                 prompt: Annotated[str, typer.Argument(help="The user message.")],
                 max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 64,
                 temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
                 store: StoreOpt = None):
        """Answer one prompt with a model, for a quick look."""
        from llmpost.artifacts.store import Store
        from llmpost.evaluation.generation import generate as gen
        from llmpost.models.load import load_model, load_tokenizer, resolve_model

        src = resolve_model(ref, Store.default(store))
        tokenizer, model = load_tokenizer(src), load_model(src)
        text = gen(model, tokenizer, [[{"role": "user", "content": prompt}]], max_new_tokens=max_new_tokens,
                   do_sample=temperature > 0, temperature=temperature or 1.0)[0]
        print(text)

    @app.command(epilog="Examples: llmpost export sft-lora --merge merged/ ; "
                        "llmpost export sft-lora --push-to-hub me/tiny-sft-lora --private")
    def export(ref: Annotated[str, typer.Argument(help="Model artifact ref (full model or adapter).")],
               merge: Annotated[Path | None, typer.Option("--merge", help="Directory to write the merged full model to.")] = None,
               push_to_hub: Annotated[str | None, typer.Option("--push-to-hub", metavar="ORG/NAME", help="Upload to this Hugging Face Hub repo (created if missing): the model as stored (an adapter stays one), or with --merge the merged model, and a model card; the branch then holds just these. Token: $HF_TOKEN or `hf auth login`.")] = None,
               private: Annotated[bool, typer.Option("--private", help="Make a new Hub repo private (an existing repo keeps its visibility).")] = False,
               revision: Annotated[str | None, typer.Option("--revision", "--branch", help="Hub branch to commit to, created from main if missing (default: main).")] = None,
               commit_message: Annotated[str | None, typer.Option("--commit-message", help="Hub commit message (default: 'Upload REF (KIND) with llmpost VERSION').")] = None,
               store: StoreOpt = None):
        """Ship a model: --merge writes a plain transformers model (adapter merged into its base); --push-to-hub uploads it to the Hugging Face Hub."""
        from llmpost.artifacts.store import Store
        from llmpost.errors import LlmpostError

        if merge is None and push_to_hub is None:
            raise LlmpostError("export needs --merge DIR, --push-to-hub ORG/NAME, or both",
                               hint="--merge writes a plain transformers model; --push-to-hub uploads to the Hugging Face Hub")
        given = [flag for flag, value in [("--private", private), ("--revision", revision),
                                          ("--commit-message", commit_message)] if value]
        if push_to_hub is None and given:
            raise LlmpostError(f"without --push-to-hub, {' and '.join(given)} would do nothing", hint="add --push-to-hub ORG/NAME")
        if push_to_hub is None:
            from llmpost.models.export import export_merged
            from llmpost.models.load import resolve_model

            out = export_merged(resolve_model(ref, Store.default(store)), merge)
            console.print(f"merged model written to [bold]{out}[/bold] (load with AutoModelForCausalLM.from_pretrained)")
            return
        from llmpost.models.hub import HubTarget
        from llmpost.pipeline.push import push_artifact

        target = HubTarget(push_to_hub, private=private, revision=revision, commit_message=commit_message)
        print(push_artifact(ref, target, Store.default(store), merge_to=merge, console=console))  # the URL, on stdout

    @app.command(epilog="Example: llmpost doctor")
    def doctor():
        """Report versions, the compute device, 4-bit (bitsandbytes) support and offline mode."""
        from llmpost.cli.doctor import doctor_report

        Console().print(doctor_report())  # a report: stdout, so it can be piped
