"""stages/heldout.start_outputs: when a stage's "before" evaluation may reuse its start model's own answers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from llmpost.stages.dpo import Config


def start_artifact(tmp_path, *, qlora=False, max_new_tokens=32):
    """A finished artifact's directory as a stage writes it: its config and eval_items.jsonl."""
    items = [{"phase": "before", "index": 0, "id": "aaa", "prompt": "q", "output": "old", "extracted": None,
              "answer": "1", "correct": False, "reward": None, "rewards": {}},
             {"phase": "after", "index": 0, "id": "aaa", "prompt": "q", "output": "1", "extracted": "1",
              "answer": "1", "correct": True, "reward": None, "rewards": {}}]
    (tmp_path / "eval_items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    manifest = {"config": {"qlora": qlora, "eval": {"max_new_tokens": max_new_tokens}}}
    return SimpleNamespace(artifact=SimpleNamespace(path=tmp_path, manifest=manifest))


def test_the_start_models_final_answers_are_reused(tmp_path):
    from llmpost.stages.heldout import start_outputs

    assert start_outputs(start_artifact(tmp_path), Config()) == {"aaa": "1"}  # the "after" phase only


@pytest.mark.parametrize("start, cfg", [
    ({"qlora": True}, {}),  # it answered with a 4-bit base; the stage loads full weights
    ({}, {"qlora": True}),  # the stage loads the weights in 4 bits
    ({"max_new_tokens": 16}, {}),  # a shorter budget cuts answers the stage would let finish
])
def test_nothing_is_reused_where_the_answers_could_differ(tmp_path, start, cfg):
    from llmpost.stages.heldout import start_outputs

    assert start_outputs(start_artifact(tmp_path, **start), Config(**cfg)) == {}


def test_a_model_that_is_no_artifact_has_nothing_to_reuse():
    from llmpost.stages.heldout import start_outputs

    assert start_outputs(SimpleNamespace(artifact=None), Config()) == {}
