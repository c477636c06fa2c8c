"""Acceptance of `llmpost judge` (slow), on the quickstart's SFT with the quickstart's own stages:

1. a tiny judge trained on the built-in judge data agrees with the ground truth on at least 75%
   of held-out pairs (builtin:arith-pairs:test), and
2. the quickstart judge's preferences, sampled from the SFT model, train a DPO model (`dpo-rlaif`)
   that beats that SFT model on held-out exact match.

Run with `make test-slow` (or `pytest -m slow tests/integration/test_judge_acceptance.py`).
"""

from __future__ import annotations

import pytest
from conftest import QUICKSTART, eval_report, ok, run_cli

# The quickstart's judge model, trained longer and at a lower learning rate than tiny's 3e-3. Measured on
# an SFT like the quickstart's, 2000 steps of 16 rows at lr 1e-3: 0.95 agreement with seed 0, 0.895 with seed 1
# (on the judge data before it held "neither" pairs and both orders; not measured since).
JUDGE_STEPS, JUDGE_LR = 2000, 1e-3


@pytest.mark.slow
def test_tiny_judge_agrees_with_the_truth_on_75_percent_of_held_out_pairs(quickstart_store):
    longer = ("--set", f"stages.judge-model.max_steps={JUDGE_STEPS}", "--set", f"stages.judge-model.learning_rate={JUDGE_LR}",
              "--set", "stages.judge-model.out=judge-model")
    ok(run_cli("run", QUICKSTART, "--only", "judge-model", *longer, store=quickstart_store, timeout=3600))
    ok(run_cli("judge", "--prompts", "builtin:arith-pairs:test", "--judge", "judge-model", "--output", "pairs",
               "--max-prompts", "200", "--out", "judge-check", store=quickstart_store))
    truth = eval_report(quickstart_store, "judge-check")["ground_truth"]
    assert truth["pairs"] == 200
    assert truth["agreement"] >= 0.75, truth


@pytest.mark.slow
def test_quickstart_judge_preferences_train_a_dpo_model_that_beats_the_sft(quickstart_store):
    ok(run_cli("run", QUICKSTART, "--only", "judge-model", "--only", "judge", "--only", "dpo-rlaif",
               store=quickstart_store, timeout=3600))
    dpo = eval_report(quickstart_store, "quickstart-dpo-rlaif")
    sft_exact = eval_report(quickstart_store, "quickstart-sft")["exact_match"]
    assert dpo["exact_match_before"] == pytest.approx(sft_exact)
    assert dpo["exact_match"] > sft_exact, (dpo["exact_match"], sft_exact)
