"""Print runs/bench/results.jsonl as a table (used by `make bench`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table


def main(path: str) -> None:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()] if Path(path).exists() else []
    table = Table(title="llmpost benchmarks (measured side by side in one run)")
    for col in ("benchmark", "value", "target"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["name"], f"{row['value']:.3f} {row['unit']}", row["target"])
    Console().print(table)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/bench/results.jsonl")
