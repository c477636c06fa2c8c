"""What every stage command does: layer its config, then run it into the store and report."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from llmpost.config.layers import stage_layers
from llmpost.config.resolve import load_yaml, parse_sets, resolve, to_yaml


def console_width(stream) -> int | None:
    """None (rich follows the terminal, or COLUMNS when set), else 160: piped or in a CI log there is no
    terminal width to follow, and a run's plan (its reasons) reads better wider than rich's default of 80."""
    return None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else 160


# emoji=False: both print artifact names, refs and reward specs as written ("prm:x:agg" is no emoji code)
console = Console(stderr=True, width=console_width(sys.stderr), emoji=False)  # progress and chatter
results = Console(width=console_width(sys.stdout), emoji=False)  # the outcome: stdout, so scripts can read it


def resolve_stage_config(stage: str, *, flags: dict[str, Any], config_file: Path | None = None,
                         sets: list[str] | None = None):
    """The stage's validated config from the command line: --config FILE < flags < --set (`config.layers`)."""
    from llmpost.stages import load_stage

    layers = stage_layers(config_file=load_yaml(config_file) if config_file is not None else None, flags=flags,
                          sets=parse_sets(sets))
    return resolve(load_stage(stage).Config, layers, source=f"{stage} config")


def run_stage_command(stage: str, *, flags: dict[str, Any], config_file: Path | None, sets: list[str] | None,
                      print_config: bool, store: str | None) -> None:
    """Resolve, then run the stage and print where its artifact landed and its headline metrics."""
    cfg = resolve_stage_config(stage, flags=flags, config_file=config_file, sets=sets)
    if print_config:
        print(to_yaml(cfg), end="")
        return
    from llmpost.artifacts.store import Store
    from llmpost.pipeline.execute import execute_stage

    outcome = execute_stage(stage, cfg, Store.default(store), console=console)
    show_outcome(outcome)


def show_outcome(outcome) -> None:
    artifact = outcome.artifact
    table = Table(title=f"{artifact.ref}  ({outcome.wall_time_s:.0f}s)", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in (artifact.manifest.get("metrics") or {}).items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    results.print(table)
    results.print(f"artifact: [bold]{artifact.ref}[/bold] -> {artifact.path}")
