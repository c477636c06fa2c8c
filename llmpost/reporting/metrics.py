"""metrics.jsonl: one JSON object per logging step, appended as training goes."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmpost.reporting.tracking import Tracker


class MetricsLog:
    """Appends `{"step": N, "time": s, ...}` lines to `path`; numbers only, NaN/inf dropped.

    With a `tracker`, each row also goes to the run's experiment trackers (`report_to`), same names, same step.
    """

    def __init__(self, path: Path, tracker: Tracker | None = None):
        self.path = Path(path)
        self.start = time.time()
        self.tracker = tracker

    def write(self, step: int, values: dict) -> None:
        row = {"step": step, "time": round(time.time() - self.start, 3)}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                row[key] = value
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tracker is not None:
            self.tracker.log(row, step)


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl (empty when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
