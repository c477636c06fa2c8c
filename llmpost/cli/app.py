"""The `llmpost` command: registers the command groups and turns errors into exit codes.

Exit codes: 0 ok, 1 the job failed, 2 bad usage/config/data, 130 interrupted.
A `LlmpostError` prints one line and a hint; LLMPOST_DEBUG=1 shows tracebacks.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer._click import exceptions as click_errors  # typer vendors its own click

from llmpost import __version__
from llmpost.cli import (
    cmd_compare,
    cmd_dpo,
    cmd_grpo,
    cmd_judge,
    cmd_kto,
    cmd_plan,
    cmd_ppo,
    cmd_prm,
    cmd_rm,
    cmd_run,
    cmd_sft,
    model_cmds,
    store_cmds,
)
from llmpost.errors import LlmpostError

app = typer.Typer(
    name="llmpost",
    help="The whole LLM post-training flow: sft, rm, prm, ppo, dpo, kto, judge, grpo — as shell commands "
         "that write versioned, traceable artifacts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, emoji=False)  # messages quote user text: "prm:x:agg" is no emoji code


def version_callback(value: bool) -> None:
    if value:
        print(f"llmpost {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool | None, typer.Option("--version", callback=version_callback, is_eager=True,
                                                          help="Print the version and exit.")] = None) -> None:
    """llmpost: post-training stages with versioned artifacts. Try `llmpost sft --help`."""


for group in (cmd_sft, cmd_dpo, cmd_kto, cmd_rm, cmd_prm, cmd_judge, cmd_grpo, cmd_ppo, model_cmds, store_cmds, cmd_run,
              cmd_compare, cmd_plan):
    group.register(app)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    debug = os.environ.get("LLMPOST_DEBUG") == "1"
    if not debug:  # library chatter (per-map progress bars, info logs) hides llmpost's own output
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights", "Writing model shards"
        # Deprecations inside the libraries (e.g. TRL calling transformers' old names) are not the user's to fix.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft|accelerate)(\.|$)")
        # bitsandbytes warns on every import that an optional faster CPU kernel package is absent
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        code = app(standalone_mode=False)
    except LlmpostError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[yellow]hint:[/yellow] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        code = 130
    except click_errors.ClickException as exc:  # usage errors: unknown option, missing argument
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2) or 2)
    except Exception as exc:  # a failed job: one line, traceback on request
        if debug:
            raise
        err.print(f"[bold red]error:[/bold red] the job failed: {type(exc).__name__}: {escape(str(exc))}", highlight=False)
        err.print("[yellow]hint:[/yellow] set LLMPOST_DEBUG=1 for the full traceback", highlight=False)
        sys.exit(1)
    if code == 130:  # typer turns Ctrl-C inside a command into exit code 130
        err.print("[bold red]interrupted[/bold red]: no new version was published; `latest` is unchanged")
    sys.exit(code if isinstance(code, int) else 0)
