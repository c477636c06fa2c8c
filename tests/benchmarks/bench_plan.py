"""The memory planner against a real run: `llmpost plan sft --device cpu` vs the peak RSS of `llmpost sft`.

Both sides in one run, on the tiny model, with training data whose examples all
fill `max_length` (the planner's assumption). For the tiny model most of the RSS
is the Python/torch/transformers runtime itself, which the planner models as a
measured constant; the benchmark measures that baseline again here (an idle
process importing what a stage imports) and records the model-dependent part
(estimate minus runtime vs RSS minus idle RSS) next to the total.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ok, run_cli

from tests.benchmarks.harness import record

IDLE = (
    "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot\n"
    "import torch, transformers, trl, peft, datasets, accelerate\n"
    "from trl import SFTTrainer\n"
    "import llmpost.stages.sft, llmpost.pipeline.execute\n"
    "m = torch.nn.Linear(8, 8); m(torch.randn(4, 8)).sum().backward()\n"
)
MAX_LENGTH, BATCH, STEPS = 256, 16, 8


def peak_rss(argv: list[str], log: Path) -> int:
    """Peak resident set size (bytes) of the process `argv` runs, from its own rusage."""
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code == 0, f"{argv} exited {code}:\n{log.read_text()[-3000:]}"
    return usage.ru_maxrss * 1024  # Linux reports KiB


def long_conversations(path: Path, n: int = 128) -> Path:
    """Conversations longer than MAX_LENGTH tokens (a character or a number chunk per token for `tiny`): all truncated to it."""
    rows = []
    for i in range(n):
        question = " ".join(f"Ann has {i + k} apples and buys {k} more." for k in range(6)) + " How many now?"
        answer = " ".join(f"{i + k}+{k}={i + 2 * k}" for k in range(12)) + f"\n#### {i}"
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.bench
def test_planner_estimate_vs_peak_rss_of_tiny_sft(tmp_path: Path):
    data = long_conversations(tmp_path / "long.jsonl")
    settings = ["--set", f"data={data}", "--set", f"batch_size={BATCH}", "--set", f"max_length={MAX_LENGTH}",
                "--set", "eval.enabled=false", "--set", "loss_data=null", "--set", "completion_only_loss=false"]
    plan = json.loads(ok(run_cli("plan", "sft", "--device", "cpu", "--json", *settings)).stdout)[0]
    estimate = plan["needed_bytes"]
    runtime_const = next(p["bytes"] for p in plan["parts"] if p["name"] == "runtime")

    idle = peak_rss([sys.executable, "-c", IDLE], tmp_path / "idle.log")
    measured = peak_rss([sys.executable, "-m", "llmpost", "sft", *settings, "--set", f"max_steps={STEPS}",
                         "--store", str(tmp_path / "store")], tmp_path / "sft.log")

    ratio = estimate / measured
    mb = 1024**2
    record("plan: tiny sft CPU estimate / measured peak RSS", ratio, "0.75..1.25",
           estimate_mb=round(estimate / mb), measured_mb=round(measured / mb), idle_runtime_mb=round(idle / mb),
           planner_runtime_mb=round(runtime_const / mb),
           above_runtime_ratio=round((estimate - runtime_const) / max(measured - idle, 1), 3),
           tokens_per_step=BATCH * MAX_LENGTH)
    assert 0.75 <= ratio <= 1.25, f"estimate {estimate / mb:.0f} MB vs measured {measured / mb:.0f} MB"
