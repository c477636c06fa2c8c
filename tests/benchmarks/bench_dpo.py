"""DPO's reference model: LoRA with the adapter disabled vs full fine-tuning with a second reference copy.

Both sides run the real `llmpost dpo` command, one after the other in this run, on
the same model: a Llama shaped like `tiny` but wider and deeper (~11M parameters),
so weights, not the interpreter, dominate memory.

Memory is each command's peak resident set size (ru_maxrss from os.wait4 on that
process alone). On CPU, RSS is what the run really costs: it counts the weights,
the reference copy, gradients, optimizer state and activations. tracemalloc would
miss all of these, because torch allocates tensor memory outside Python's
allocator. Every process also pays for its imports, so the ratio is reported both
raw and above an import-only baseline process. Step time is the trainer's own
train_runtime / steps from the artifact's manifest (evaluation switched off).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmpost.artifacts.store import Store
from tests.benchmarks.harness import record

STEPS = 6
BENCH_ARCH = dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
                  num_key_value_heads=6, max_position_embeddings=512, tie_word_embeddings=True)
IMPORTS = "import torch, transformers, trl, peft, datasets, llmpost.stages.dpo, llmpost.pipeline.execute"


def build_bench_model(path: Path) -> Path:
    """A wider, deeper `tiny` (same tokenizer and chat template), randomly initialised."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmpost.models.tiny import build_tokenizer

    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **BENCH_ARCH)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def peak_rss_mb(cmd: list[str], env: dict) -> float:
    """Run `cmd` to completion and return its own peak RSS in MiB (it must succeed)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, output[-3000:]
    return usage.ru_maxrss / 1024  # Linux reports KiB


def run_dpo(store: Path, model: Path, name: str, *extra: str) -> dict:
    """Peak RSS and seconds per step of one `llmpost dpo` run."""
    env = {**os.environ, "LLMPOST_STORE": str(store), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "llmpost", "dpo", "--model", str(model), "--out", name, "--batch-size", "2",
           "--set", f"max_steps={STEPS}", "--set", "eval.enabled=false", "--set", "logging_steps=1", *extra]
    rss = peak_rss_mb(cmd, env)
    metrics = Store(store).resolve(name).manifest["metrics"]
    return {"peak_rss_mb": rss, "step_s": metrics["train_runtime_s"] / metrics["steps"]}


@pytest.mark.bench
def test_lora_reference_vs_full_second_reference(tmp_path):
    model = build_bench_model(tmp_path / "bench-model")
    store = tmp_path / "store"
    baseline = peak_rss_mb([sys.executable, "-c", IMPORTS], {**os.environ, "HF_HUB_OFFLINE": "1"})
    lora = run_dpo(store, model, "lora", "--lora")
    full = run_dpo(store, model, "full")
    details = {"lora_peak_rss_mb": round(lora["peak_rss_mb"]), "full_peak_rss_mb": round(full["peak_rss_mb"]),
               "import_baseline_mb": round(baseline), "lora_step_s": round(lora["step_s"], 3),
               "full_step_s": round(full["step_s"], 3), "steps": STEPS}
    above = (lora["peak_rss_mb"] - baseline) / (full["peak_rss_mb"] - baseline)
    record("dpo peak RSS: LoRA (adapter-disabled ref) / full + second ref", lora["peak_rss_mb"] / full["peak_rss_mb"],
           "< 1", **details)
    record("dpo peak RSS above imports: LoRA / full + second ref", above, "< 0.6", **details)
    record("dpo step time: LoRA (adapter-disabled ref) / full + second ref", lora["step_s"] / full["step_s"],
           "<= 1.1", **details)
