"""PPO vs GRPO on the same number of sampled completions: step time and peak memory.

Both sides train the session's short-SFT `sft` model on the built-in prompts with an
exact-match reward and sample 32 completions per step (PPO: 32 prompts x 1, GRPO:
4 prompts x 8) of at most 32 tokens at temperature 1. Both make one optimisation pass
over each batch (PPO `ppo.epochs=1` in one minibatch, GRPO `num_iterations=1`) and
both hold the policy near a reference (PPO `kl.coef`, GRPO `beta`), so each runs a
reference forward. What PPO adds is the critic: the value head, the value loss and
its extra forward pass for old log-probs and values. Evaluation is off.

Each side runs in its own process, alternating, ROUNDS times. Step time is the wall
time between consecutive metrics.jsonl rows (one per step on both sides), pooled
after WARMUP and compared by median. Peak memory is what each process reports when
it exits: the CUDA allocator's peak on a GPU, else the peak resident set size.
A second figure (reported, no target) puts PPO at its default of 4 epochs x 2
minibatches against the same one-pass GRPO: what PPO's extra passes cost.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from llmpost.artifacts.store import Store
from tests.benchmarks.harness import record

STEPS, WARMUP, ROUNDS = 10, 2, 2
COMPLETIONS, MAX_TOKENS, LR = 32, 32, 1e-4
REPO = Path(__file__).resolve().parents[2]

PPO_SETS = [f"batch_size={COMPLETIONS}", f"rollout.max_new_tokens={MAX_TOKENS}", "rollout.temperature=1.0",
            "kl.coef=0.05", f"learning_rate={LR}"]
GRPO_SETS = [f"batch_size={COMPLETIONS}", "num_generations=8", f"max_completion_length={MAX_TOKENS}",
             "temperature=1.0", "beta=0.04", f"learning_rate={LR}"]
ONE_PASS = {"ppo": [f"ppo.mini_batch_size={COMPLETIONS}", "ppo.epochs=1"], "grpo": ["num_iterations=1"]}
PPO_DEFAULT_PASSES = [f"ppo.mini_batch_size={COMPLETIONS // 2}", "ppo.epochs=4"]

# Runs the llmpost CLI in this process, then writes the process's peak memory to $BENCH_PEAK.
CHILD = """
import json, os, resource, sys
sys.argv = ["llmpost", *sys.argv[1:]]
from llmpost.cli.app import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
peak = {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
import torch
if torch.cuda.is_available():
    peak["cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
with open(os.environ["BENCH_PEAK"], "w") as f:
    json.dump(peak, f)
sys.exit(code)
"""


def run_stage(stage: str, store: Path, name: str, sets: list[str], tmp: Path) -> tuple[list[float], float]:
    """One run of `stage`: (its step times after WARMUP, its peak memory in MiB)."""
    peak_file = tmp / f"{name}.peak.json"
    env = {**os.environ, "LLMPOST_STORE": str(store), "HF_HUB_OFFLINE": "1", "BENCH_PEAK": str(peak_file)}
    common = [f"max_steps={STEPS}", "logging_steps=1", "eval.enabled=false", "rewards=[exact_match]", "seed=0"]
    cmd = [sys.executable, "-c", CHILD, stage, "--model", "sft", "--out", name,
           *[arg for s in common + sets for arg in ("--set", s)]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (Store(store).resolve(name).path / "metrics.jsonl").read_text().splitlines()]
    times = [r["time"] for r in rows if "time" in r and "step" in r]
    steps = [r["step"] for r in rows if "time" in r and "step" in r]
    deltas = [b - a for a, b, s in zip(times, times[1:], steps[1:], strict=False) if s > WARMUP]
    peak = json.loads(peak_file.read_text())
    return deltas, peak.get("cuda_mb", peak["rss_mb"])


def compare(sft_store: Path, tmp: Path) -> dict:
    """Alternating runs of GRPO, one-pass PPO and default-pass PPO; medians of step times, peaks of memory."""
    sides = {"grpo": ("grpo", GRPO_SETS + ONE_PASS["grpo"]), "ppo": ("ppo", PPO_SETS + ONE_PASS["ppo"]),
             "ppo_default": ("ppo", PPO_SETS + PPO_DEFAULT_PASSES)}
    times: dict[str, list[float]] = {side: [] for side in sides}
    peaks: dict[str, list[float]] = {side: [] for side in sides}
    for n in range(ROUNDS):
        for side, (stage, sets) in sides.items():
            deltas, peak = run_stage(stage, sft_store, f"bench-{side.replace('_', '-')}-{n}", sets, tmp)
            times[side] += deltas
            peaks[side].append(peak)
    return {f"{side}_step_s": statistics.median(times[side]) for side in sides} | {
        f"{side}_peak_mb": max(peaks[side]) for side in sides}


@pytest.mark.bench
def test_ppo_step_time_and_memory_vs_grpo(sft_store, tmp_path):
    figures = compare(sft_store, tmp_path)
    details = {k: round(v, 3) for k, v in figures.items()} | {
        "completions": COMPLETIONS, "max_tokens": MAX_TOKENS, "steps": STEPS, "warmup": WARMUP, "rounds": ROUNDS}
    record("ppo step time / grpo step time (same completions, one pass)",
           figures["ppo_step_s"] / figures["grpo_step_s"], "<= 1.5", **details)
    record("ppo peak memory / grpo peak memory (same completions, one pass)",
           figures["ppo_peak_mb"] / figures["grpo_peak_mb"], "<= 1.3", **details)
    record("ppo step time at default 4 epochs x 2 minibatches / grpo one pass",
           figures["ppo_default_step_s"] / figures["grpo_step_s"], "report", **details)
