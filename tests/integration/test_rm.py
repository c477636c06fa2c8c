"""`llmpost rm` and `llmpost score` end to end on the real tiny model: artifacts, LoRA/QLoRA, the gate.

The acceptance-size run (>= 80% held-out accuracy from a full-length SFT) is marked
slow; here the RM trains briefly from the short fixture SFT and must beat its start.
"""

from __future__ import annotations

import json
import random

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store
from llmpost.data.builtin import load_builtin

SHORT = ("--set", "eval.max_samples=40", "--set", "logging_steps=5")
QUESTION = "Ann has 3 pens and gets 4 more. How many pens does Ann have?"


def swapped_at_random(path, n: int, seed: int = 0):
    """A pair file whose chosen/rejected are swapped on a coin flip: a user-made bad RM dataset."""
    rng = random.Random(seed)
    rows = []
    for row in load_builtin("arith-pairs", "train")[:n]:
        if rng.random() < 0.5:
            row["chosen"], row["rejected"] = row["rejected"], row["chosen"]
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def score_with_transformers(model, tokenizer, prompt: str, response: str) -> float:
    import torch

    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                                         tokenize=False)
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()


@pytest.fixture(scope="module")
def rm_store(sft_store):
    """`sft_store` with `rm`: a short reward model trained from `sft`, behind a modest gate."""
    proc = ok(run_cli("rm", "--model", "sft", "--out", "rm", "--set", "max_steps=100", "--set", "learning_rate=3e-4",
                      "--min-accuracy", "0.5", *SHORT, store=sft_store))
    assert "accuracy" in proc.stdout  # the headline table
    return sft_store


def test_rm_from_sft_learns_and_the_artifact_scores_with_plain_transformers(rm_store, tmp_path):
    sft_store = rm_store
    art = Store(sft_store).resolve("rm")
    assert {"manifest.json", "config.yaml", "metrics.jsonl", "eval.json", "README.md", "model"} <= {
        p.name for p in art.path.iterdir()}
    assert art.manifest["parents"][0]["id"] == Store(sft_store).resolve("sft").id
    report = json.loads((art.path / "eval.json").read_text())
    assert {"accuracy", "accuracy_top", "accuracy_across_prompts", "mean_margin", "reward_mean", "reward_std",
            "length_corr"} <= set(report)
    assert report["n_prompts"] == 40 and report["n_pairs"] == 240  # 4 ranked responses -> 6 pairs each
    assert report["accuracy"] >= report["accuracy_before"] + 0.05 and report["accuracy"] >= 0.5
    assert report["mean_margin"] > 0
    assert report["accuracy_across_prompts"] > 0.5, "rewards are centred: a best answer outscores other prompts' worst"
    for key in ("accuracy", "accuracy_before", "accuracy_delta"):  # each with its 95% interval over prompts
        assert report[f"{key}_ci"][0] <= report[key] <= report[f"{key}_ci"][1], key

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(art.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(art.model_dir)
    right, wrong = (score_with_transformers(model, tokenizer, QUESTION, f"3+4={n}\n#### {n}") for n in (7, 19))
    scored = score_cli(sft_store, tmp_path, "rm", [{"prompt": QUESTION, "completion": "3+4=7\n#### 7"},
                                                   {"prompt": QUESTION, "response": "3+4=19\n#### 19"}])
    assert [r["score"] for r in scored] == pytest.approx([right, wrong], abs=1e-4)  # same text, same reward


def score_cli(store, tmp_path, ref: str, rows: list[dict]) -> list[dict]:
    data, out = tmp_path / f"{ref}-rows.jsonl", tmp_path / f"{ref}-scored.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ok(run_cli("score", ref, "--data", data, "--output", out, store=store))
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_lora_rm_saves_the_score_head_with_the_adapter(sft_store, tmp_path):
    ok(run_cli("rm", "--model", "sft", "--lora", "--out", "rm-lora", "--set", "max_steps=3", "--set", "lora.r=4",
               *SHORT, store=sft_store))
    art = Store(sft_store).resolve("rm-lora")
    adapter = json.loads((art.model_dir / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS" and "score" in adapter["modules_to_save"]

    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer

    model = AutoPeftModelForSequenceClassification.from_pretrained(art.model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(art.model_dir)
    expected = score_with_transformers(model, tokenizer, QUESTION, "3+4=7\n#### 7")
    [row] = score_cli(sft_store, tmp_path, "rm-lora", [{"prompt": QUESTION, "completion": "3+4=7\n#### 7"}])
    assert row["score"] == pytest.approx(expected, abs=1e-4)  # the trained head came back, not a random one


def test_qlora_rm_on_a_lora_sft_adapter(store):
    ok(run_cli("sft", "--lora", "--out", "sft-lora", "--set", "max_steps=2", "--set", "lora.r=4",
               "--set", "eval.enabled=false", "--set", "loss_data=null", store=store))
    ok(run_cli("rm", "--model", "sft-lora", "--qlora", "--out", "rm-q", "--set", "max_steps=2", *SHORT, store=store))
    art = Store(store).resolve("rm-q")
    adapter = json.loads((art.model_dir / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS" and adapter["r"] == 4  # started from the SFT adapter
    assert art.manifest["base_model"]["id"] == "tiny"
    assert art.manifest["parents"][0]["id"] == Store(store).resolve("sft-lora").id


def test_gate_stops_a_bad_rm_and_publishes_nothing(sft_store, tmp_path):
    bad = swapped_at_random(tmp_path / "swapped.jsonl", 400)
    proc = run_cli("rm", "--model", "sft", "--data", bad, "--out", "rm-bad", "--min-accuracy", "0.8",
                   "--set", "max_steps=20", *SHORT, store=sft_store)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "failed the quality gate" in proc.stderr and "min_accuracy 0.800" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert Store(sft_store).list("rm-bad") == []
    kept = next(Store(sft_store).root.glob(".tmp/work-rm-bad-*/gate-failed/eval.json"))
    assert str(kept) in proc.stderr  # where the report was kept, on one line to copy
    assert json.loads(kept.read_text())["accuracy"] < 0.8


def test_score_reports_pairwise_accuracy_and_refuses_a_causal_lm(rm_store):
    sft_store = rm_store
    proc = ok(run_cli("score", "rm", "--data", "builtin:arith-pairs:test", store=sft_store))
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == len(load_builtin("arith-pairs", "test")) and all(len(r["scores"]) == 2 for r in rows)
    assert "accuracy=" in proc.stderr and "length_corr=" in proc.stderr

    bad = run_cli("score", "sft", "--data", "builtin:arith-pairs:test", store=sft_store)
    assert bad.returncode == 2 and "not a reward model" in bad.stderr


def test_rm_rejects_non_preference_data_with_a_hint(store):
    proc = run_cli("rm", "--data", "builtin:arith-sft", store=store)
    assert proc.returncode == 2
    assert "fits no preference format" in proc.stderr and "prompt+chosen+rejected" in proc.stderr


# The acceptance run: a full-length SFT (1000 steps of 32), then a LoRA reward model of 900 steps, which
# reached 0.876 held-out pairwise accuracy on the built-in rankings (0.800 when operands went to 20).
ACCEPT_RM = ("--lora", "--set", "learning_rate=1e-3", "--set", "max_steps=900")


@pytest.mark.slow
def test_acceptance_rm_reaches_80_percent_and_the_gate_stops_shuffled_labels(store, tmp_path):
    ok(run_cli("sft", "--out", "sft", "--batch-size", "32", "--set", "max_steps=1000", "--set", "loss_data=null",
               store=store))
    ok(run_cli("rm", "--model", "sft", "--out", "rm-accept", "--min-accuracy", "0.8", *ACCEPT_RM, store=store))
    report = json.loads((Store(store).resolve("rm-accept").path / "eval.json").read_text())
    assert report["accuracy"] >= 0.8 and report["n_prompts"] == len(load_builtin("arith-rankings", "test"))

    bad = swapped_at_random(tmp_path / "swapped.jsonl", 3000)
    proc = run_cli("rm", "--model", "sft", "--data", bad, "--out", "rm-shuffled", "--min-accuracy", "0.8",
                   *ACCEPT_RM, store=store)
    assert proc.returncode == 1 and "failed the quality gate" in proc.stderr
    assert Store(store).list("rm-shuffled") == []
