"""`llmpost dpo` end to end on the real tiny model: learning, the reference model, data shapes, QLoRA, errors.

The reference checks train with a learning rate too small to move any weight:
the policy then still equals the reference, so every implicit reward must be ~0.
A wrong reference (e.g. the base under an input adapter) gives rewards far from 0.
"""

from __future__ import annotations

import json

import pytest
from conftest import QUICKSTART, eval_report, ok, run_cli

from llmpost.artifacts.store import Store
from llmpost.data.builtin import load_builtin

SMALL_EVAL = ("--set", "eval.max_samples=24")
FROZEN = ("--lr", "1e-12", "--set", "max_steps=1")  # one step that changes nothing


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dpo_from_sft_learns_the_preferences(sft_store):
    """A short DPO from the fixture SFT: held-out chosen answers now get the higher implicit reward.

    The acceptance-size run (>= 90% and an exact-match gain) needs a full-length SFT; here the
    check is that preferences are learned at all: above chance on 96 held-out pairs.
    """
    ok(run_cli("dpo", "--model", "sft", "--out", "dpo", "--set", "max_steps=60", "--set", "learning_rate=5e-4",
               "--set", "eval.max_samples=96", store=sft_store))
    art = Store(sft_store).resolve("dpo")
    report = eval_report(sft_store, "dpo")
    assert report["n_pairs"] == 96 and report["n_eval"] == 96
    assert report["reward_accuracy"] > 0.5, report  # held-out pairs: chosen more often has the higher implicit reward
    assert report["reward_margin"] > 0
    for rate in ("reward_accuracy", "logp_accuracy", "logp_accuracy_before", "exact_match", "exact_match_before"):
        low, high = report[f"{rate}_ci"]
        assert low <= report[rate] <= high, rate
    assert report["exact_match_delta_ci"][0] <= report["exact_match_delta"] <= report["exact_match_delta_ci"][1]
    phases = [json.loads(line)["phase"] for line in (art.path / "eval_items.jsonl").read_text().splitlines()]
    assert phases == ["before"] * 96 + ["after"] * 96
    assert art.manifest["parents"][0]["id"] == Store(sft_store).resolve("sft").id
    assert {d["ref"] for d in art.manifest["datasets"]} >= {"builtin:arith-pairs", "builtin:arith-pairs:test"}
    logged = [json.loads(line) for line in (art.path / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/accuracies" in row for row in logged)
    assert "second copy" in (art.path / "README.md").read_text()  # the card says what the reference was

    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(art.model_dir) is not None


@pytest.mark.parametrize("mode", [("--lora",), ("--precompute-ref",)], ids=["lora-adapter-disabled", "precomputed"])
def test_reference_is_the_input_model(sft_store, mode, tmp_path):
    name = "ref-check-" + mode[0].strip("-")
    # 32 training pairs: a precomputed reference scores the whole training set before the first step.
    pairs = write_jsonl(tmp_path / "pairs.jsonl", load_builtin("arith-pairs", "train")[:32])
    ok(run_cli("dpo", "--model", "sft", "--data", pairs, "--out", name, *mode, *FROZEN, *SMALL_EVAL, store=sft_store))
    report = eval_report(sft_store, name)
    assert abs(report["chosen_reward"]) < 1e-4 and abs(report["rejected_reward"]) < 1e-4, report


def test_dpo_on_an_adapter_keeps_that_adapter_as_reference(store):
    ok(run_cli("sft", "--lora", "--out", "sft-lora", "--set", "max_steps=15", "--set", "eval.enabled=false",
               store=store))
    ok(run_cli("dpo", "--model", "sft-lora", "--out", "dpo-lora", *FROZEN, *SMALL_EVAL, store=store))
    report = eval_report(store, "dpo-lora")
    assert abs(report["chosen_reward"]) < 1e-4 and abs(report["rejected_reward"]) < 1e-4, report

    # The check above could fail: the SFT adapter really changes the model's log-probs.
    from peft import AutoPeftModelForCausalLM

    art = Store(store).resolve("dpo-lora")
    assert not (art.model_dir / "ref").exists()  # the frozen reference copy is not saved
    model = AutoPeftModelForCausalLM.from_pretrained(art.model_dir)
    assert list(model.peft_config) == ["default"]
    assert adapter_shift(model, load_builtin("arith-pairs", "test")[0]) > 10 * 1e-4 / 0.1


def adapter_shift(model, pair) -> float:
    """|log p(chosen) with the adapter - without it|, summed over the answer's tokens."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model.peft_config["default"].base_model_name_or_path)
    messages = [{"role": "user", "content": pair["prompt"]}, {"role": "assistant", "content": pair["chosen"]}]
    prompt_len = len(tok.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=True)["input_ids"])
    ids = torch.tensor([tok.apply_chat_template(messages, tokenize=True)["input_ids"]])

    def logp() -> float:
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, prompt_len - 1:-1]
        return logits.log_softmax(-1).gather(1, ids[0, prompt_len:, None]).sum().item()

    with_adapter = logp()
    with model.disable_adapter():
        without = logp()
    return abs(with_adapter - without)


def test_qlora_dpo_trains_on_real_4bit_layers(sft_store):
    ok(run_cli("dpo", "--model", "sft", "--qlora", "--out", "dpo-qlora", "--set", "max_steps=3", *SMALL_EVAL,
               store=sft_store))
    art = Store(sft_store).resolve("dpo-qlora")
    assert art.manifest["metrics"]["quantized_layers"] == 28  # every q/k/v/o/gate/up/down of 4 layers
    config = json.loads((art.model_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(Store(sft_store).resolve("sft").model_dir)


def test_rankings_and_judge_artifacts_are_used_directly(store, tmp_path):
    rankings = [{k: r[k] for k in ("prompt", "responses")} for r in load_builtin("arith-rankings", "train")[:10]]
    judged = write_jsonl(tmp_path / "judged" / "data" / "train.jsonl", rankings)
    with Store(store).begin("judged") as pending:  # a preference-dataset artifact, as `llmpost judge` writes
        write_jsonl(pending.dir / "data" / "train.jsonl", rankings)
        pending.finalize({"stage": "judge"})

    for data, expand, pairs in ((judged.parent.parent, "best_vs_rest", 30), ("judged", "all", 60)):
        ok(run_cli("dpo", "--data", data, "--expand", expand, "--out", f"dpo-{expand}", "--set", "max_steps=1",
                   "--set", "eval.enabled=false", store=store))
        assert Store(store).resolve(f"dpo-{expand}").manifest["metrics"]["train_pairs"] == pairs
    parents = Store(store).resolve("dpo-all").manifest["parents"]
    assert [p["id"] for p in parents] == [Store(store).resolve("judged").id]  # lineage reaches the judge output


def test_bad_loss_and_non_preference_data_are_usage_errors(store):
    proc = run_cli("dpo", "--loss", "sigmod", store=store)
    assert proc.returncode == 2 and "did you mean 'sigmoid'" in proc.stderr, proc.stderr
    proc = run_cli("dpo", "--data", "builtin:arith-sft", "--set", "max_steps=1", store=store)
    assert proc.returncode == 2, proc.stderr
    assert "builtin:arith-sft" in proc.stderr and "prompt+chosen+rejected" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_acceptance_dpo_after_sft_reaches_90_percent_and_five_points(quickstart_store):
    """The acceptance run: the quickstart's SFT, then its `dpo` stage on the built-in pairs."""
    ok(run_cli("run", QUICKSTART, "--only", "dpo", store=quickstart_store, timeout=3600))
    report = eval_report(quickstart_store, "quickstart-dpo")
    assert report["reward_accuracy"] >= 0.90, report
    assert report["exact_match"] - report["exact_match_before"] >= 0.05, report
