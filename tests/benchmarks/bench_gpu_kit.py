"""The GPU benchmark kit (`make bench-gpu`) at toy size: it runs end to end before a GPU is there to run it.

Runs `python -m tests.benchmarks.gpu_kit --size toy` as `make bench-gpu` runs `--size real`, and checks
its table: every row is there, no run failed, and on a machine without CUDA the vLLM rows say why
they were skipped. The toy figures themselves mean little (a 2-layer model on CPU), so nothing is
recorded in the benchmark table; the real size's figures are read from its own results.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.gpu_kit import REPO

ROWS = ["sft 64 llmpost", "sft 64 plain TRL", "sft 128 llmpost", "sft 128 plain TRL", "sft 256 llmpost",
        "sft 256 plain TRL", "dpo", "grpo", "grpo --vllm", "ppo", "ppo --vllm"]


@pytest.mark.bench
def test_gpu_kit_runs_at_toy_size(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.gpu_kit", "--size", "toy", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout)
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {r["run"]: r for r in results["rows"]}
    assert list(rows) == ROWS
    failed = {name: r["status"] for name, r in rows.items() if r["status"] != "ok" and not r["status"].startswith("skipped")}
    assert not failed, failed
    for name, row in rows.items():
        if "--vllm" in name and not results["machine"]["cuda"]:
            assert row["status"] == "skipped: no CUDA"
        elif row["status"] == "ok":
            assert row["step_s"] and row["peak_bytes"] and row["plan_ratio"], row
    assert all(rows[f"sft {n} {side}"]["tokens_s"] for n in (64, 128, 256) for side in ("llmpost", "plain TRL"))
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {name} |" in table for name in ROWS)


@pytest.mark.bench
def test_gpu_kit_sft_rounds_alternate_the_side_that_runs_first(tmp_path: Path):
    """`--sft-rounds 2`: two pairs per length, the first side swapped between them, the ratio the pairs' median."""
    proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.gpu_kit", "--size", "toy", "--out", str(tmp_path),
                           "--only", "sft:64,sft:128", "--sft-rounds", "2"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["run"]: r for r in json.loads((tmp_path / "results.json").read_text())["rows"]}
    assert list(rows) == ROWS[:4]
    assert rows["sft 64 llmpost"]["details"]["order"] == ["llmpost", "plain", "plain", "llmpost"]
    assert rows["sft 128 llmpost"]["details"]["order"] == ["llmpost", "plain", "plain", "llmpost"]
    for n in (64, 128):
        ours = rows[f"sft {n} llmpost"]
        ratios = ours["details"]["round_ratios"]
        assert len(ratios) == 2 and all(r > 0 for r in ratios)
        assert ours["vs_plain"].startswith(f"tok/s {sum(ratios) / 2:.2f}x")  # the median of two is their mean
        assert "rounds: " in ours["vs_plain"]
    # every run of every round is its own process, its own log
    logs = {p.name for p in (tmp_path / "logs").glob("*.log")}
    assert {"sft-64.log", "sft-64-r1.log", "plain-64.log", "plain-64-r1.log"} <= logs
