"""`llmpost sft` end to end on the real tiny model: artifacts, lineage, LoRA, QLoRA, export."""

from __future__ import annotations

import json

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store


def test_sft_artifact_is_complete_and_learns(sft_store):
    art = Store(sft_store).resolve("sft")
    files = {p.name for p in art.path.iterdir()}
    assert {"manifest.json", "config.yaml", "metrics.jsonl", "eval.json", "README.md", "model", "plots"} <= files
    assert (art.path / "plots" / "loss.png").stat().st_size > 1000
    manifest = art.manifest
    assert manifest["stage"] == "sft" and manifest["status"] == "finished"
    assert manifest["base_model"]["id"] == "tiny"
    assert manifest["versions"]["torch"] and manifest["versions"]["trl"]
    assert any(d["ref"] == "builtin:arith-sft" and len(d["fingerprint"]) == 64 for d in manifest["datasets"])
    losses = [row["loss"] for row in map(json.loads, (art.path / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert losses[-1] < 0.6 * losses[0], losses  # the tiny model really trains
    report = json.loads((art.path / "eval.json").read_text())
    assert report["exact_match_before"] == 0.0  # untrained tiny knows nothing
    assert report["n_eval"] == 200
    # the gain is real: its paired 95% interval excludes 0, and each rate lies inside its own interval
    low, high = report["exact_match_delta_ci"]
    assert 0 < low <= report["exact_match_delta"] <= high, report
    assert report["exact_match_delta"] == pytest.approx(report["exact_match"] - report["exact_match_before"])
    for key in ("exact_match", "exact_match_before"):
        assert report[f"{key}_ci"][0] <= report[key] <= report[f"{key}_ci"][1]
    assert manifest["metrics"]["exact_match_delta_ci"] == report["exact_match_delta_ci"]

    items = [json.loads(line) for line in (art.path / report["items"]).read_text().splitlines()]
    before = [i for i in items if i["phase"] == "before"]
    after = [i for i in items if i["phase"] == "after"]
    assert [i["index"] for i in before] == [i["index"] for i in after] == list(range(200))
    assert [i["id"] for i in before] == [i["id"] for i in after]  # the same prompts, in the same order
    assert sum(i["correct"] for i in after) / 200 == report["exact_match"]  # the items are what was counted
    assert all(i["answer"] and i["prompt"] and "output" in i for i in after)


def test_sft_artifact_loads_with_plain_transformers(sft_store):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Store(sft_store).resolve("sft").model_dir
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Ann has 3 pens and gets 4 more. How many pens does Ann have?"}],
                                     tokenize=False, add_generation_prompt=True)
    out = model.generate(**tok(prompt, return_tensors="pt", add_special_tokens=False), max_new_tokens=16, do_sample=False)
    assert "####" in tok.decode(out[0], skip_special_tokens=True)  # it learned the answer format


def test_lineage_shows_base_model_and_dataset(sft_store):
    proc = ok(run_cli("lineage", "sft", "--json", store=sft_store))
    tree = json.loads(proc.stdout)
    text = json.dumps(tree)
    assert "tiny" in text and "builtin:arith-sft" in text


def test_sft_on_an_artifact_records_its_parent(sft_store):
    ok(run_cli("sft", "--model", "sft", "--out", "sft-more", "--set", "max_steps=2", "--set", "eval.enabled=false",
               store=sft_store))
    store = Store(sft_store)
    child, parent = store.resolve("sft-more"), store.resolve("sft")
    assert child.manifest["parents"][0]["id"] == parent.id
    assert child.manifest["base_model"]["id"] == "tiny"
    lineage = ok(run_cli("lineage", "sft-more", store=sft_store)).stdout
    assert "sft@v1" in lineage and "tiny" in lineage


def test_lora_adapter_loads_with_peft_and_exports_merged(store, tmp_path):
    ok(run_cli("sft", "--lora", "--out", "sft-lora", "--set", "max_steps=3", "--set", "eval.max_samples=8",
               "--set", "lora.r=4", store=store))
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    art = Store(store).resolve("sft-lora")
    assert (art.model_dir / "adapter_config.json").is_file()
    peft_model = AutoPeftModelForCausalLM.from_pretrained(art.model_dir)  # base found via adapter_config.json
    assert peft_model.peft_config["default"].r == 4

    merged = tmp_path / "merged"
    ok(run_cli("export", "sft-lora", "--merge", merged, store=store))
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert not any("lora" in name for name, _ in model.named_parameters())
    answer = ok(run_cli("generate", "sft-lora", "What is 2 plus 3?", "--max-new-tokens", "8", store=store))
    assert answer.returncode == 0
