"""Acceptance of `llmpost judge` (slow): a tiny judge trained on the built-in judge data

1. agrees with the ground truth on at least 75% of held-out pairs (builtin:arith-pairs:test), and
2. its preference dataset, sampled from the SFT model, trains a DPO model that beats that SFT
   model on held-out exact match.

Run with `make test-slow` (or `pytest -m slow tests/integration/test_judge_acceptance.py`).
"""

from __future__ import annotations

import json

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store

SFT_STEPS = 1000        # the quickstart's SFT
JUDGE_STEPS = 600       # SFT of the SFT model on builtin:arith-judge
PROMPTS = 1000          # training prompts the policy samples for
SAMPLES = 4
DPO_STEPS = 300


def report(store, ref: str) -> dict:
    return json.loads((Store(store).resolve(ref).path / "eval.json").read_text())


@pytest.mark.slow
@pytest.mark.xfail(reason="open acceptance target, not a regression: tiny-v2 judges trained from the SFT model agreed "
                          "with the truth on at most 0.23 of held-out pairs, not 0.75", strict=False)
def test_tiny_judge_agrees_with_the_truth_and_its_preferences_improve_the_policy(tmp_path):
    store = tmp_path / "store"
    ok(run_cli("sft", "--out", "sft", "--batch-size", "32", "--set", f"max_steps={SFT_STEPS}",
               "--set", "loss_data=null", store=store))
    ok(run_cli("sft", "--model", "sft", "--data", "builtin:arith-judge", "--out", "judge-model", "--batch-size", "32",
               "--set", f"max_steps={JUDGE_STEPS}", "--set", "eval.enabled=false", store=store))

    ok(run_cli("judge", "--prompts", "builtin:arith-pairs:test", "--judge", "judge-model", "--output", "pairs",
               "--out", "judge-check", store=store))
    truth = report(store, "judge-check")["ground_truth"]
    assert truth["pairs"] == 200
    assert truth["agreement"] >= 0.75, truth

    ok(run_cli("judge", "--policy", "sft", "--prompts", "builtin:arith-prompts:train", "--judge", "judge-model",
               "--samples", str(SAMPLES), "--max-prompts", str(PROMPTS), "--out", "prefs", store=store))
    ok(run_cli("dpo", "--model", "sft", "--data", "prefs", "--out", "dpo", "--batch-size", "32",
               "--set", f"max_steps={DPO_STEPS}", "--set", "eval_pairs=prefs:test", store=store))
    dpo = report(store, "dpo")
    sft_exact = report(store, "sft")["exact_match"]
    assert dpo["exact_match_before"] == pytest.approx(sft_exact)
    assert dpo["exact_match"] > sft_exact, (dpo["exact_match"], sft_exact)
