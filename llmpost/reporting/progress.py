"""The one progress bar every stage shows: what, a bar, done/total, the latest figures, time spent and left."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressBar:
    """A rich progress bar for one task of `total` steps on `console`.

    `with ProgressBar(console, "ppo", total) as bar: bar.update(step, info)` or `bar.advance(n)`;
    `start()` and `stop()` for callers whose start and end are separate events.

    Piped to a file or a CI log (no terminal), rich draws the bar once, when it stops: a 25-minute stage
    would show nothing until its end. There the bar also prints a plain line at most every `line_every_s`
    seconds, so a log shows the run is alive, how far it is and how long is left.
    """

    def __init__(self, console: Console, description: str, total: int | None, line_every_s: float = 60.0):
        self.line_every_s = line_every_s
        self.last_line = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False,
            # no stdout/stderr proxies: an exception's message must reach the terminal even if
            # the work dies without stopping the bar
            redirect_stdout=False, redirect_stderr=False,
        )
        self.task = self.progress.add_task(description, total=total, info="")

    def start(self) -> ProgressBar:
        self.progress.start()
        return self

    def stop(self) -> None:
        self.progress.stop()

    def update(self, completed: int, info: str | None = None) -> None:
        """Set the steps done and, when given, the figures shown beside the bar."""
        fields = {} if info is None else {"info": info}
        self.progress.update(self.task, completed=completed, **fields)
        self._line_if_due()

    def advance(self, steps: int = 1) -> None:
        self.progress.advance(self.task, steps)
        self._line_if_due()

    def _line_if_due(self) -> None:
        """Without a terminal, a plain line when `line_every_s` has passed since the last one."""
        now = time.monotonic()
        if self.progress.console.is_terminal or now - self.last_line < self.line_every_s:
            return
        self.last_line = now
        self.progress.console.print(progress_line(self.progress.tasks[self.task]), highlight=False, markup=False)

    def __enter__(self) -> ProgressBar:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def progress_line(task) -> str:
    """`ppo 12/30  reward_mean=0.41  kl=0.02  5:02 elapsed, about 7:33 left` for a rich progress task."""
    count = f"{int(task.completed)}/{int(task.total)}" if task.total else f"{int(task.completed)}"
    when = f"{clock(task.elapsed)} elapsed"
    if task.total and 0 < task.completed < task.total:
        # the mean pace so far: rich's own estimate needs two updates within 30 s, and a step may take a minute
        when += f", about {clock(task.elapsed / task.completed * (task.total - task.completed))} left"
    return "  ".join(part for part in (f"{task.description} {count}", task.fields.get("info", ""), when) if part)


def clock(seconds: float | None) -> str:
    """`m:ss`, or `h:mm:ss` from an hour."""
    minutes, secs = divmod(int(seconds or 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def figures(values: dict, keys: tuple[str, ...]) -> str:
    """`key=value` for those of `keys` that `values` holds as numbers, for the text beside a bar."""
    return "  ".join(f"{k}={values[k]:.4g}" for k in keys
                     if isinstance(values.get(k), int | float) and not isinstance(values.get(k), bool))
