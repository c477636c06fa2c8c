"""GRPO step time: `llmpost grpo` vs plain TRL GRPOTrainer on the same setup, and where a step goes.

Both sides train the session's short-SFT `sft` model on the built-in prompts with an
exact-match reward: 32 completions per step (4 prompts x 8), the same sampling, seed
and learning rate, STEPS steps, evaluation off. Each side runs in its own process,
alternating, ROUNDS times. Step time is TRL's own `step_time` metric (generation +
reward + training of one optimizer step), pooled over the steps after WARMUP and
compared by median. llmpost also logs `time/generation` and `time/reward`, which
split its step into generation / reward / training.
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
SETUP = dict(batch_size=32, num_generations=8, max_completion_length=64, temperature=1.0, beta=0.0,
             learning_rate=1e-3, seed=0)
REPO = Path(__file__).resolve().parents[2]


def run_llmpost(store: Path, name: str) -> list[dict]:
    """One `llmpost grpo` run; its metrics.jsonl rows."""
    env = {**os.environ, "LLMPOST_STORE": str(store), "HF_HUB_OFFLINE": "1"}
    sets = [f"max_steps={STEPS}", "logging_steps=1", "eval.enabled=false", "rewards=[exact_match]",
            *(f"{k}={v}" for k, v in SETUP.items())]
    cmd = [sys.executable, "-m", "llmpost", "grpo", "--model", "sft", "--out", name,
           *[arg for s in sets for arg in ("--set", s)]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = Store(store).resolve(name).path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_plain(model_dir: Path, out: Path, module: str = "tests.benchmarks.bench_grpo") -> list[dict]:
    """The same training with plain TRL in a fresh process (`module`'s `plain_main`); its log history."""
    code = f"from {module} import plain_main; plain_main({str(model_dir)!r}, {str(out)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def plain_main(model_dir: str, out: str) -> None:
    """Plain TRL on the tiny model, on one thread as `llmpost grpo` runs it."""
    import torch

    torch.set_num_threads(1)
    plain_grpo(model_dir, out, SETUP, STEPS)


def plain_grpo(model_dir: str, out: str, setup: dict, steps: int, lora: dict | None = None) -> None:
    """Plain TRL: GRPOTrainer + GRPOConfig (+ a peft LoraConfig) + a plain exact-match reward, nothing from
    llmpost's stage; llmpost's own trainer defaults (cosine, no warmup, no weight decay, no checkpointing)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from llmpost.data.builtin import load_builtin
    from llmpost.evaluation.answers import is_correct

    def exact_match(prompts, completions, answer, **kwargs):
        return [float(is_correct(c[0]["content"], a)) for c, a in zip(completions, answer, strict=True)]

    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]}
            for r in load_builtin("arith-prompts", "train")]
    args = GRPOConfig(
        output_dir=str(Path(out).parent / "plain-work"), max_steps=steps, logging_steps=1, save_strategy="no",
        report_to="none", per_device_train_batch_size=setup["batch_size"], num_generations=setup["num_generations"],
        max_completion_length=setup["max_completion_length"], temperature=setup["temperature"], beta=setup["beta"],
        num_iterations=setup.get("num_iterations", 1), learning_rate=setup["learning_rate"], seed=setup["seed"],
        data_seed=setup["seed"], lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0, bf16=False,
        activation_checkpointing=False, disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                             target_modules=lora["target_modules"], task_type="CAUSAL_LM") if lora else None
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), reward_funcs=[exact_match],
                          args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=AutoTokenizer.from_pretrained(model_dir), peft_config=peft_config)
    trainer.train()
    Path(out).write_text(json.dumps(trainer.state.log_history))


def after_warmup(rows: list[dict], key: str) -> list[float]:
    return [r[key] for r in rows if key in r and r.get("step", 0) > WARMUP]


@pytest.mark.bench
def test_grpo_step_time_vs_plain_trl(sft_store, tmp_path):
    model_dir = Store(sft_store).resolve("sft").model_dir
    ours: list[dict] = []
    plain: list[dict] = []
    for n in range(ROUNDS):
        plain += run_plain(model_dir, tmp_path / f"plain-{n}.json")
        ours += run_llmpost(sft_store, f"bench-grpo-{n}")
    ours_step = statistics.median(after_warmup(ours, "step_time"))
    plain_step = statistics.median(after_warmup(plain, "step_time"))
    generation = statistics.median(after_warmup(ours, "time/generation"))
    reward = statistics.median(after_warmup(ours, "time/reward"))
    training = ours_step - generation - reward
    details = {"llmpost_step_s": round(ours_step, 3), "plain_trl_step_s": round(plain_step, 3),
               "steps": STEPS, "warmup": WARMUP, "rounds": ROUNDS}
    record("grpo step time: llmpost / plain TRL GRPOTrainer", ours_step / plain_step, "<= 1.05", **details)
    split = {"generation_s": round(generation, 3), "reward_s": round(reward, 4), "training_s": round(training, 3)}
    record("grpo step share: generation", generation / ours_step, "report", unit="fraction", **split)
    record("grpo step share: reward", reward / ours_step, "report", unit="fraction", **split)
    record("grpo step share: training", training / ours_step, "report", unit="fraction", **split)
