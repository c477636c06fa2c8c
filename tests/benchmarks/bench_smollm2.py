"""GRPO and PPO on the real model, SmolLM2-135M-Instruct (`smollm2`): step time against plain TRL and each other.

Every side trains a new LoRA adapter on SmolLM2 as it ships, with the real-model flow's
adapter (recipes/smollm2-cpu.yaml): r 16, alpha 32, dropout 0, on the attention and MLP
projections of the top 10 of its 30 layers. All sample 16 completions per step of at
most 64 tokens at temperature 1 for the built-in prompts (`builtin:arith-prompts`), reward
them by exact match, make one optimisation pass over them at learning rate 1e-4, and hold
the policy near the model as it ships (a reference forward on every side), seed 0,
evaluation off, metrics every step:

- `llmpost grpo`: 4 prompts x 4 completions, beta 0.04, num_iterations 1;
- plain TRL GRPOTrainer: the same, with a peft LoraConfig of the same adapter, llmpost's
  scheduler (cosine, no warmup, no weight decay) and no activation checkpointing;
- `llmpost ppo`: 16 prompts x 1 completion, kl.coef 0.05, ppo.epochs 1 in one minibatch of 16.

Each side runs in its own process, in turn, ROUNDS times. GRPO step time against plain
TRL is TRL's own `step_time` metric (generation + reward + training of one optimizer step),
as in bench_grpo.py; PPO against GRPO is the wall time between consecutive metrics.jsonl
rows and the peak memory each process reports at exit, as in bench_ppo.py. Both pool the
steps after WARMUP and compare medians. llmpost's GRPO logs `time/generation` and
`time/reward`, PPO `time_rollout`, `time_score` and `time_train`: the generation share
of a step on each.

Threads: llmpost leaves torch's thread count as it is for a real model (only the tiny
model is put on one thread), and plain TRL does the same, so OMP_NUM_THREADS decides for
every side (tests/conftest.py sets it to 1 unless it is set: `OMP_NUM_THREADS=2 make bench`
runs these on 2 threads). $LLMPOST_BENCH_SMOLLM2_STEPS (at least WARMUP + 1) shortens a
smoke run.
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
from tests.benchmarks.bench_grpo import plain_grpo, run_plain
from tests.benchmarks.bench_ppo import CHILD
from tests.benchmarks.harness import record

STEPS, WARMUP, ROUNDS = int(os.environ.get("LLMPOST_BENCH_SMOLLM2_STEPS", 4)), 1, 1
MODEL, COMPLETIONS, MAX_TOKENS, LR = "smollm2", 16, 64, 1e-4
LORA = dict(r=16, alpha=32, dropout=0.0, target_modules=r".*\.layers\.(2[0-9])\..*_proj")  # the top 10 of 30 layers
GRPO = dict(batch_size=COMPLETIONS, num_generations=4, max_completion_length=MAX_TOKENS, temperature=1.0, beta=0.04,
            num_iterations=1, learning_rate=LR, seed=0)
REPO = Path(__file__).resolve().parents[2]

# fp32 on every side, as plain TRL trains; bf16 (the default on CPUs with AMX) is measured on its own below.
COMMON_SETS = [f"max_steps={STEPS}", "logging_steps=1", "eval.enabled=false", "rewards=[exact_match]", "seed=0",
               "bf16=false",
               f"learning_rate={LR}", "lora.enabled=true", *(f"lora.{k}={v}" for k, v in LORA.items())]
GRPO_SETS = [f"{k}={v}" for k, v in GRPO.items() if k not in ("learning_rate", "seed")]
PPO_SETS = [f"batch_size={COMPLETIONS}", f"rollout.max_new_tokens={MAX_TOKENS}", "rollout.temperature=1.0",
            "kl.coef=0.05", "ppo.epochs=1", f"ppo.mini_batch_size={COMPLETIONS}"]


@pytest.fixture(scope="module")
def smollm2_dir(model_cache) -> Path:
    """SmolLM2 converted to a plain model directory, in the session's model cache the llmpost runs read too."""
    from llmpost.models.load import resolve_model

    return Path(resolve_model(MODEL).path)


def run_llmpost(stage: str, store: Path, name: str, sets: list[str], tmp: Path, common: list[str] = COMMON_SETS) -> tuple[list[dict], float]:
    """One `llmpost STAGE --model smollm2` run: its metrics.jsonl rows, one per step, and its peak memory in MiB."""
    peak_file = tmp / f"{name}.peak.json"
    env = {**os.environ, "LLMPOST_STORE": str(store), "HF_HUB_OFFLINE": "1", "BENCH_PEAK": str(peak_file)}
    cmd = [sys.executable, "-c", CHILD, stage, "--model", MODEL, "--out", name,
           *[arg for s in common + sets for arg in ("--set", s)]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (Store(store).resolve(name).path / "metrics.jsonl").read_text().splitlines()]
    peak = json.loads(peak_file.read_text())
    return per_step(rows), peak.get("cuda_mb", peak["rss_mb"])


def per_step(rows: list[dict]) -> list[dict]:
    """Each step's first row: GRPO writes TRL's end-of-training summary as a second row of the last step."""
    seen: set[int] = set()
    return [r for r in rows if "step" in r and not (r["step"] in seen or seen.add(r["step"]))]


def plain_main(model_dir: str, out: str) -> None:
    """Plain TRL with the same adapter; no torch.set_num_threads: `llmpost grpo` sets none for a real model either."""
    plain_grpo(model_dir, out, GRPO, STEPS, lora=LORA)


def after_warmup(rows: list[dict], key: str) -> list[float]:
    return [r[key] for r in rows if key in r and r.get("step", 0) > WARMUP]


def row_deltas(rows: list[dict]) -> list[float]:
    """Wall time between consecutive steps' rows, for the steps after WARMUP."""
    return [b["time"] - a["time"] for a, b in zip(rows, rows[1:], strict=False) if b["step"] > WARMUP]


@pytest.mark.bench
def test_smollm2_grpo_and_ppo_step_time(smollm2_dir, tmp_path):
    store = tmp_path / "store"
    plain: list[dict] = []
    grpo: list[dict] = []
    ppo: list[dict] = []
    peaks: dict[str, list[float]] = {"grpo": [], "ppo": []}
    for n in range(ROUNDS):
        plain += run_plain(smollm2_dir, tmp_path / f"plain-{n}.json", module="tests.benchmarks.bench_smollm2")
        rows, peak = run_llmpost("grpo", store, f"bench-smol-grpo-{n}", GRPO_SETS, tmp_path)
        grpo.append(rows)
        peaks["grpo"].append(peak)
        rows, peak = run_llmpost("ppo", store, f"bench-smol-ppo-{n}", PPO_SETS, tmp_path)
        ppo.append(rows)
        peaks["ppo"].append(peak)
    settings = {"completions": COMPLETIONS, "max_tokens": MAX_TOKENS, "steps": STEPS, "warmup": WARMUP,
                "rounds": ROUNDS, "threads": os.environ.get("OMP_NUM_THREADS", "torch default")}

    grpo_rows = [r for run in grpo for r in run]
    ours_step = statistics.median(after_warmup(grpo_rows, "step_time"))
    plain_step = statistics.median(after_warmup(plain, "step_time"))
    record("smollm2 grpo step time: llmpost / plain TRL GRPOTrainer", ours_step / plain_step, "<= 1.05",
           llmpost_step_s=round(ours_step, 3), plain_trl_step_s=round(plain_step, 3), **settings)
    generation = statistics.median(after_warmup(grpo_rows, "time/generation"))
    reward = statistics.median(after_warmup(grpo_rows, "time/reward"))
    record("smollm2 grpo step share: generation", generation / ours_step, "report", unit="fraction",
           generation_s=round(generation, 3), reward_s=round(reward, 4),
           training_s=round(ours_step - generation - reward, 3), step_s=round(ours_step, 3), **settings)

    grpo_wall = statistics.median([d for run in grpo for d in row_deltas(run)])
    ppo_wall = statistics.median([d for run in ppo for d in row_deltas(run)])
    figures = {"ppo_step_s": round(ppo_wall, 3), "grpo_step_s": round(grpo_wall, 3),
               "ppo_peak_mb": round(max(peaks["ppo"]), 1), "grpo_peak_mb": round(max(peaks["grpo"]), 1)}
    record("smollm2 ppo step time / grpo (same completions, one pass)", ppo_wall / grpo_wall, "<= 1.5",
           **figures, **settings)
    record("smollm2 ppo peak memory / grpo (same completions, one pass)", max(peaks["ppo"]) / max(peaks["grpo"]),
           "<= 1.3", **figures, **settings)

    ppo_rows = [r for run in ppo for r in run]
    ppo_step = statistics.median(after_warmup(ppo_rows, "time_step"))
    rollout = statistics.median(after_warmup(ppo_rows, "time_rollout"))
    record("smollm2 ppo step share: generation", rollout / ppo_step, "report", unit="fraction",
           generation_s=round(rollout, 3), score_s=round(statistics.median(after_warmup(ppo_rows, "time_score")), 4),
           training_s=round(statistics.median(after_warmup(ppo_rows, "time_train")), 3), step_s=round(ppo_step, 3),
           **settings)


@pytest.mark.bench
def test_smollm2_grpo_step_time_in_bf16(smollm2_dir, tmp_path):
    """`llmpost grpo` in bf16 against fp32, the same steps otherwise: what the CPU's bf16 support is worth."""
    import torch

    from llmpost.models.precision import cpu_has_bf16_matmul

    if not cpu_has_bf16_matmul() and not torch.cuda.is_available():
        pytest.skip("bf16 is emulated on this CPU (no AMX): llmpost keeps fp32 here")
    store = tmp_path / "store"
    steps = {}
    for precision in ("fp32", "bf16"):
        sets = [*GRPO_SETS, f"bf16={precision == 'bf16'}"]
        rows, _ = run_llmpost("grpo", store, f"bench-smol-grpo-{precision}", sets, tmp_path,
                              common=[s for s in COMMON_SETS if not s.startswith("bf16=")])
        steps[precision] = statistics.median(after_warmup(rows, "step_time"))
    record("smollm2 grpo step time: bf16 / fp32", steps["bf16"] / steps["fp32"], "report",
           bf16_step_s=round(steps["bf16"], 3), fp32_step_s=round(steps["fp32"], 3), completions=COMPLETIONS,
           max_tokens=MAX_TOKENS, steps=STEPS, threads=os.environ.get("OMP_NUM_THREADS", "torch default"))


DPO_SETS = ["batch_size=8", "loss=[sigmoid,sft]"]  # the real-model recipe's DPO, on the built-in pairs
DPO_ROUNDS = 2


@pytest.mark.bench
def test_smollm2_dpo_step_time_with_the_reference_replaying_the_frozen_layers(smollm2_dir, tmp_path):
    """The recipe's DPO with its reference pass replaying the policy's 20 frozen layers, against full
    forwards: in turn, DPO_ROUNDS times, with the same losses at every step (`stages/dpo_trainer.py`)."""
    store = tmp_path / "store"
    common = [s for s in COMMON_SETS if not s.startswith("rewards=")]
    deltas: dict[bool, list[float]] = {True: [], False: []}
    losses: dict[bool, list[float]] = {}
    for n in range(DPO_ROUNDS):
        for reuse in (False, True):
            sets = [*DPO_SETS, f"reuse_frozen_layers={str(reuse).lower()}"]
            rows, _ = run_llmpost("dpo", store, f"bench-smol-dpo-{reuse}-{n}".lower(), sets, tmp_path, common=common)
            deltas[reuse] += row_deltas(rows)
            losses[reuse] = [r["loss"] for r in rows]
    assert losses[True] == losses[False], "replaying the frozen layers changed what DPO learns"
    replayed, full = statistics.median(deltas[True]), statistics.median(deltas[False])
    record("smollm2 dpo step time: reference replaying the frozen layers / full forwards", replayed / full, "<= 0.85",
           replayed_step_s=round(replayed, 3), full_step_s=round(full, 3), steps=STEPS, warmup=WARMUP,
           rounds=DPO_ROUNDS, threads=os.environ.get("OMP_NUM_THREADS", "torch default"))
