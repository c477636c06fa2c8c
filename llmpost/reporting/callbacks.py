"""A transformers TrainerCallback that feeds metrics.jsonl and a rich progress bar.

Imported only inside a stage's run(): it needs transformers.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback

from llmpost.reporting.metrics import MetricsLog

SHOWN = ("loss", "reward", "rewards/accuracies", "eval_loss", "kl", "learning_rate")


class ReportCallback(TrainerCallback):
    """Writes every log to metrics.jsonl and shows a progress bar with the latest loss."""

    def __init__(self, log: MetricsLog, console: Console, description: str):
        self.log = log
        self.console = console
        self.description = description
        self.progress: Progress | None = None
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False,
            # no stdout/stderr proxies: an exception's message must reach the terminal even if
            # training dies without stopping the bar
            redirect_stdout=False, redirect_stderr=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=state.max_steps, info="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.log.write(state.global_step, logs)
        if self.progress is not None:
            info = "  ".join(f"{k}={logs[k]:.4g}" for k in SHOWN if isinstance(logs.get(k), int | float))
            self.progress.update(self.task, info=info)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)
            self.progress.stop()
            self.progress = None
