"""`llmpost kto` end to end on the real tiny model: a trained artifact, the reference model, data shapes, errors.

As in test_dpo.py, the reference check trains with a learning rate too small to move any
weight: the policy then still equals the reference, so every implicit reward must be ~0.
"""

from __future__ import annotations

import json

import pytest
from conftest import eval_report, ok, run_cli

from llmpost.artifacts.store import Store
from llmpost.data.builtin import load_builtin
from llmpost.errors import ConfigError

FROZEN = ("--lr", "1e-12", "--set", "max_steps=1")  # one step that changes nothing


def test_kto_from_sft_learns_the_feedback_and_writes_an_evaluated_model(sft_store):
    ok(run_cli("kto", "--model", "sft", "--out", "kto", "--beta", "1.0", "--set", "max_steps=20",
               "--set", "eval.max_samples=32", store=sft_store))
    art = Store(sft_store).resolve("kto")
    assert art.manifest["stage"] == "kto" and art.manifest["metrics"]["steps"] == 20
    assert art.manifest["parents"][0]["id"] == Store(sft_store).resolve("sft").id
    assert {d["ref"] for d in art.manifest["datasets"]} >= {"builtin:arith-feedback", "builtin:arith-feedback:test"}
    report = eval_report(sft_store, "kto")
    assert report["n_eval"] == 32 and report["n_desirable"] + report["n_undesirable"] == 32
    for rate in ("exact_match_before", "exact_match", "label_accuracy"):
        low, high = report[f"{rate}_ci"]
        assert low <= report[rate] <= high, rate
    low, high = report["exact_match_delta_ci"]
    assert low <= report["exact_match_delta"] <= high  # paired over the same 32 problems:
    assert report["exact_match_delta"] == pytest.approx(report["exact_match"] - report["exact_match_before"])
    assert report["reward_margin"] == pytest.approx(report["desirable_reward"] - report["undesirable_reward"])
    assert report["reward_margin"] > 0  # held out: right answers now rewarded above wrong ones
    logged = [json.loads(line) for line in (art.path / "metrics.jsonl").read_text().splitlines()]
    assert any("kl" in row and "rewards/margins" in row for row in logged)  # KTO's own training figures
    assert "second copy" in (art.path / "README.md").read_text()  # the card says what the reference was

    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(art.model_dir) is not None


def test_lora_kto_on_pairs_uses_the_disabled_adapter_as_reference(sft_store, tmp_path):
    """Pairs in llmpost's DPO shape split into feedback; the saved adapter loads with plain peft."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in load_builtin("arith-pairs", "train")[:16]))
    ok(run_cli("kto", "--model", "sft", "--data", pairs, "--lora", "--out", "kto-lora", *FROZEN,
               "--set", "eval.max_samples=16", store=sft_store))
    art = Store(sft_store).resolve("kto-lora")
    assert (art.manifest["metrics"]["train_desirable"], art.manifest["metrics"]["train_undesirable"]) == (16, 16)
    report = eval_report(sft_store, "kto-lora")
    assert abs(report["desirable_reward"]) < 1e-4 and abs(report["undesirable_reward"]) < 1e-4, report

    from peft import AutoPeftModelForCausalLM

    config = json.loads((art.model_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(Store(sft_store).resolve("sft").model_dir)
    assert list(AutoPeftModelForCausalLM.from_pretrained(art.model_dir).peft_config) == ["default"]


def test_data_that_is_not_feedback_is_a_usage_error(store):
    proc = run_cli("kto", "--data", "builtin:arith-sft", "--set", "max_steps=1", store=store)
    assert proc.returncode == 2, proc.stderr
    assert "builtin:arith-sft" in proc.stderr and "prompt+completion+label" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_kto_in_a_recipe_and_its_config_checks():
    from llmpost.pipeline.recipe import build_recipe
    from llmpost.stages import load_stage

    recipe = build_recipe({"name": "thumbs", "stages": {
        "sft": {"uses": "sft", "max_steps": 5},
        "kto": {"uses": "kto", "model": "{{ sft }}", "beta": 0.2, "undesirable_weight": 0.5,
                "launch": {"launcher": "torchrun", "num_processes": 2}},
    }})
    kto = recipe.stages["kto"]
    assert (kto.uses, kto.needs, kto.config.model) == ("kto", ["sft"], "thumbs-sft")
    assert (kto.config.beta, kto.config.undesirable_weight, kto.launch.num_processes) == (0.2, 0.5, 2)
    with pytest.raises(ConfigError, match="batch_size must be at least 2"):
        build_recipe({"name": "one", "stages": {"kto": {"uses": "kto", "batch_size": 1}}})
    assert load_stage("kto").Config(batch_size=1, loss_type="apo_zero_unpaired").batch_size == 1  # no KL estimate
