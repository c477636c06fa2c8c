"""The one progress bar every stage shows: what, a bar, done/total, the latest figures, time spent and left."""

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


class ProgressBar:
    """A rich progress bar for one task of `total` steps on `console`.

    `with ProgressBar(console, "ppo", total) as bar: bar.update(step, info)` or `bar.advance(n)`;
    `start()` and `stop()` for callers whose start and end are separate events.
    """

    def __init__(self, console: Console, description: str, total: int | None):
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

    def advance(self, steps: int = 1) -> None:
        self.progress.advance(self.task, steps)

    def __enter__(self) -> ProgressBar:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def figures(values: dict, keys: tuple[str, ...]) -> str:
    """`key=value` for those of `keys` that `values` holds as numbers, for the text beside a bar."""
    return "  ".join(f"{k}={values[k]:.4g}" for k in keys
                     if isinstance(values.get(k), int | float) and not isinstance(values.get(k), bool))
