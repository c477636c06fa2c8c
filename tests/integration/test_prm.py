"""`llmpost prm` and `llmpost score` on steps, end to end on the real tiny model.

The acceptance-size PRM (>= 0.90 held-out step accuracy) is measured by the process-supervision
recipe; here a short run must learn something and its artifact must score steps with plain
transformers/peft exactly as llmpost does.
"""

from __future__ import annotations

import json

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store
from llmpost.data.builtin import load_builtin

SHORT = ("--set", "eval.max_samples=60", "--set", "logging_steps=5")


def steps_with_transformers(model, tokenizer, prompt: str, steps: list[str]) -> list[float]:
    """Step scores the way the PRM's model card says to read them: no llmpost involved."""
    import torch

    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(ids, add_special_tokens=False)["input_ids"]
    ends = []
    for step in steps:
        ids += tokenizer(step + "\n", add_special_tokens=False)["input_ids"]
        ends.append(len(ids) - 1)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :, 0]
    return torch.sigmoid(logits[ends]).tolist()


@pytest.fixture(scope="module")
def prm_store(sft_store):
    """`sft_store` with `prm`: a short full-weight PRM from the fixture SFT."""
    ok(run_cli("prm", "--model", "sft", "--out", "prm", "--max-steps", "60", *SHORT, store=sft_store))
    return sft_store


def test_prm_learns_and_its_artifact_scores_steps_with_plain_transformers(prm_store):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    art = Store(prm_store).resolve("prm")
    assert art.manifest["parents"][0]["id"] == Store(prm_store).resolve("sft").id
    report = json.loads((art.path / "eval.json").read_text())
    assert report["n_solutions"] == 60
    assert report["step_accuracy"] > report["step_accuracy_before"]
    # Sixty steps learn to flag the first wrong step (an untrained head flagged none of 60 here), the
    # paired interval clear of zero; the step-accuracy gain's is wider (-0.04 to +0.13 on 60 solutions).
    assert report["first_error_accuracy_delta_ci"][0] > 0
    for name in ("first_error_accuracy", "solution_accuracy"):
        assert 0 <= report[name] <= 1 and len(report[f"{name}_ci"]) == 2

    model = AutoModelForTokenClassification.from_pretrained(art.path / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(art.path / "model")
    row = load_builtin("arith-steps", "test")[0]
    plain = steps_with_transformers(model, tokenizer, row["prompt"], row["completions"])
    sample = report["samples"][0]
    assert sample["steps"] == row["completions"]
    assert sample["scores"] == pytest.approx(plain, abs=1e-3)


def test_score_gives_every_step_a_score_and_reports_step_accuracy(prm_store, tmp_path):
    rows = load_builtin("arith-steps", "test")[:12]
    data = tmp_path / "steps.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    proc = ok(run_cli("score", "prm", "--data", data, "--output", out, store=prm_store))
    assert "step_accuracy=" in proc.stderr and "first_error_accuracy=" in proc.stderr  # stdout stays for data
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(r["step_scores"]) for r in scored] == [len(r["completions"]) for r in rows]
    assert all(r["score"] == min(r["step_scores"]) for r in scored)

    answers = tmp_path / "answers.jsonl"  # plain prompt + completion rows: steps are the completion's lines
    answers.write_text(json.dumps({"prompt": rows[0]["prompt"], "completion": "\n".join(rows[0]["completions"])}) + "\n")
    again = json.loads(ok(run_cli("score", "prm", "--data", answers, store=prm_store)).stdout)
    assert again["step_scores"] == pytest.approx(scored[0]["step_scores"], abs=1e-5)


def test_lora_prm_saves_an_adapter_with_its_score_head(store):
    from peft import AutoPeftModelForTokenClassification

    ok(run_cli("prm", "--lora", "--out", "prm-lora", "--max-steps", "5", "--set", "eval.max_samples=8", store=store))
    art = Store(store).resolve("prm-lora")
    config = json.loads((art.path / "model" / "adapter_config.json").read_text())
    assert config["task_type"] == "TOKEN_CLS"
    model = AutoPeftModelForTokenClassification.from_pretrained(art.path / "model", num_labels=1)  # as the card says
    assert model.base_model.model.score.out_features == 1


def test_prm_rows_in_the_wrong_shape_exit_2_and_write_nothing(store, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "completions": ["a", "b"], "labels": [True]}) + "\n")
    proc = run_cli("prm", "--data", bad, "--max-steps", "2", store=store)
    assert proc.returncode == 2
    assert "one label per step" in proc.stderr + proc.stdout
    assert "Math-Shepherd" in proc.stderr + proc.stdout
    assert Store(store).try_resolve("prm") is None
