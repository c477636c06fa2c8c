"""A transformers TrainerCallback that feeds metrics.jsonl and the progress bar.

Imported only inside a stage's run(): it needs transformers.
"""

from __future__ import annotations

from rich.console import Console
from transformers import TrainerCallback

from llmpost.reporting.metrics import MetricsLog
from llmpost.reporting.progress import ProgressBar, figures

SHOWN = ("loss", "reward", "rewards/accuracies", "eval_loss", "kl", "learning_rate")


class ReportCallback(TrainerCallback):
    """Writes every log to metrics.jsonl and shows a progress bar with the latest loss."""

    def __init__(self, log: MetricsLog, console: Console, description: str):
        self.log = log
        self.console = console
        self.description = description
        self.bar: ProgressBar | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = ProgressBar(self.console, self.description, state.max_steps).start()

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.log.write(state.global_step, logs)
        if self.bar is not None:
            # the closing summary (train_runtime, train_loss...) has none of SHOWN: keep the last figures
            self.bar.update(state.global_step, figures(logs, SHOWN) or None)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step)
            self.bar.stop()
            self.bar = None
