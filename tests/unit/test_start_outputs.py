"""stages/heldout.start_outputs: when a stage's "before" evaluation may reuse its start model's own answers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmpost.stages.dpo import Config


def start_artifact(tmp_path, *, qlora=False, max_new_tokens=32, recorded=None, is_tiny=True):
    """A finished artifact's directory as a stage writes it: its config, eval_items.jsonl and eval.json.

    `recorded`: the budget eval.json records (None: an artifact from before eval.json did).
    """
    items = [{"phase": "before", "index": 0, "id": "aaa", "prompt": "q", "output": "old", "extracted": None,
              "answer": "1", "correct": False, "reward": None, "rewards": {}},
             {"phase": "after", "index": 0, "id": "aaa", "prompt": "q", "output": "1", "extracted": "1",
              "answer": "1", "correct": True, "reward": None, "rewards": {}}]
    (tmp_path / "eval_items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    if recorded is not None:
        (tmp_path / "eval.json").write_text(json.dumps({"exact_match": 1.0, "max_new_tokens": recorded}))
    manifest = {"config": {"qlora": qlora, "eval": {"max_new_tokens": max_new_tokens}}}
    return SimpleNamespace(artifact=SimpleNamespace(path=tmp_path, manifest=manifest), is_tiny=is_tiny)


def test_the_start_models_final_answers_are_reused(tmp_path):
    from llmpost.stages.heldout import start_outputs

    assert start_outputs(start_artifact(tmp_path), Config()) == {"aaa": "1"}  # the "after" phase only


@pytest.mark.parametrize("start, cfg", [
    ({"qlora": True}, {}),  # it answered with a 4-bit base; the stage loads full weights
    ({}, {"qlora": True}),  # the stage loads the weights in 4 bits
    ({"max_new_tokens": 16}, {}),  # a shorter budget cuts answers the stage would let finish
    ({"max_new_tokens": None, "recorded": 16}, {}),  # the same, as eval.json records it
    ({"is_tiny": False}, {}),  # a real model evaluates with 256 tokens by default: 32 cut its answers
])
def test_nothing_is_reused_where_the_answers_could_differ(tmp_path, start, cfg):
    from llmpost.stages.heldout import start_outputs

    assert start_outputs(start_artifact(tmp_path, **start), Config(**cfg)) == {}


def test_a_model_that_is_no_artifact_has_nothing_to_reuse():
    from llmpost.stages.heldout import start_outputs

    assert start_outputs(SimpleNamespace(artifact=None), Config()) == {}



def test_the_budget_eval_json_records_is_the_one_compared(tmp_path):
    """Both sides left `eval.max_new_tokens` unset: on a real model the budget they used is 256, not 32."""
    from llmpost.stages.heldout import start_outputs

    start = start_artifact(tmp_path, max_new_tokens=None, recorded=256, is_tiny=False)
    assert start_outputs(start, Config()) == {"aaa": "1"}


def base_model_dir(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    return SimpleNamespace(artifact=None, adapter_path=None, is_tiny=False, path=str(model), revision=None)


def test_a_base_models_answers_are_kept_for_the_next_stage_until_its_files_change(tmp_path, monkeypatch):
    from llmpost.stages.heldout import base_answers, read_answers, write_answers

    monkeypatch.setenv("LLMPOST_CACHE", str(tmp_path / "cache"))
    src = base_model_dir(tmp_path)
    kept = base_answers(src, False, 256)
    assert kept is not None and read_answers(kept) == {}
    write_answers(kept, {"aaa": "5"})
    assert read_answers(base_answers(src, False, 256)) == {"aaa": "5"}
    assert base_answers(src, False, 64) != kept, "another budget cuts answers differently"
    assert base_answers(src, True, 256) != kept, "4-bit weights answer differently"
    (Path(src.path) / "model.safetensors").write_bytes(b"new weights")
    assert base_answers(src, False, 256) != kept, "weights changed in place"


@pytest.mark.parametrize("change", [
    {"is_tiny": True},  # quick to evaluate again
    {"path": "HuggingFaceTB/SmolLM2-135M-Instruct"},  # a hub id: its weights could change unseen
    {"adapter_path": "some/adapter"},  # answers depend on the adapter too
    {"artifact": object()},  # an artifact keeps its own answers (`start_outputs`)
])
def test_no_base_answers_are_kept_where_they_could_mislead(tmp_path, change):
    from llmpost.stages.heldout import base_answers

    src = base_model_dir(tmp_path)
    assert base_answers(SimpleNamespace(**{**vars(src), **change}), False, 256) is None


def test_a_model_trained_under_bf16_is_evaluated_in_its_own_precision():
    """accelerate leaves a bf16-trained model's forward wrapped in autocast: `after` must take it off."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from transformers import AutoModelForCausalLM

    from llmpost.models.tiny import tiny_path
    from llmpost.stages.heldout import without_autocast

    model = AutoModelForCausalLM.from_pretrained(tiny_path()).eval()
    ids = torch.randint(3, 50, (2, 12))
    AcceleratorState._reset_state(True)  # accelerate keeps one state per process: another test may have set it
    try:
        with torch.no_grad():
            own = model(input_ids=ids).logits
            trained = Accelerator(cpu=True, mixed_precision="bf16").prepare_model(model)
            wrapped = trained(input_ids=ids).logits
    finally:
        AcceleratorState._reset_state(True)
    with torch.no_grad():
        assert not torch.equal(wrapped, own)  # the wrapper computes in bf16
        assert torch.equal(without_autocast(trained)(input_ids=ids).logits, own)
