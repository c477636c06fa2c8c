"""metrics.jsonl: one JSON object per logging step, appended as training goes."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path


class MetricsLog:
    """Appends `{"step": N, "time": s, ...}` lines to `path`; numbers only, NaN/inf dropped."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.start = time.time()

    def write(self, step: int, values: dict) -> None:
        row = {"step": step, "time": round(time.time() - self.start, 3)}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                row[key] = value
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl (empty when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
