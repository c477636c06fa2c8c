"""The benchmark harness: every benchmark measures both sides in the same run and records a ratio.

`record()` prints one line and appends it to runs/bench/results.jsonl (or $LLMPOST_BENCH_OUT),
which `make bench` turns into a table. Targets are reported, not asserted: speed is
checked by reading the table, never by a timed assertion in the tests.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def results_path() -> Path:
    return Path(os.environ.get("LLMPOST_BENCH_OUT", "runs/bench/results.jsonl"))


def record(name: str, value: float, target: str, unit: str = "ratio", **details) -> dict:
    """Record one benchmark figure, e.g. record("sft wall / plain TRL", 1.02, "<= 1.05")."""
    row = {"name": name, "value": round(value, 4), "unit": unit, "target": target,
           "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **details}
    print(f"\nBENCH {name}: {value:.3f} {unit} (target {target}) {details}")
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


class Timer:
    """`with Timer() as t: ...; t.seconds`"""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
