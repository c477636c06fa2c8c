"""Foundation benchmarks: `llmpost sft` vs plain TRL, and CLI start-up vs `trl --help`."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.harness import Timer, record

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
STEPS, BATCH = 150, 16


def timed(cmd: list[str], **kw) -> float:
    with Timer() as t:
        subprocess.run(cmd, check=True, env=ENV, capture_output=True, **kw)
    return t.seconds


@pytest.mark.bench
def test_sft_wall_time_vs_plain_trl(tmp_path):
    """Same model, data, steps and batch; llmpost's evaluation is off so both do the same work."""
    llmpost = [sys.executable, "-m", "llmpost", "sft", "--store", str(tmp_path / "store"), "--batch-size", str(BATCH),
               "--set", f"max_steps={STEPS}", "--set", "eval.enabled=false"]
    plain = [sys.executable, str(Path(__file__).with_name("plain_trl_sft.py")), str(STEPS), str(BATCH), str(tmp_path / "plain")]
    timed(plain)  # warm caches (tiny model build, imports) before measuring either side
    ours, theirs = [], []
    for _ in range(2):  # interleaved, so drift in machine load hits both sides alike
        ours.append(timed(llmpost))
        theirs.append(timed(plain))
    record("sft wall time: llmpost / plain TRL", statistics.median(ours) / statistics.median(theirs), "<= 1.05",
           llmpost_s=round(statistics.median(ours), 2), plain_trl_s=round(statistics.median(theirs), 2), steps=STEPS)


@pytest.mark.bench
def test_help_startup_vs_trl():
    ours = statistics.median(timed([sys.executable, "-m", "llmpost", "--help"]) for _ in range(5))
    trl_bin = Path(sys.executable).with_name("trl")
    theirs = statistics.median(timed([str(trl_bin), "--help"]) for _ in range(3))
    record("llmpost --help seconds", ours, "<= 0.3 s", unit="s", trl_help_s=round(theirs, 3),
           ratio_vs_trl=round(ours / theirs, 3))
