"""Acceptance of `llmpost judge` (slow): a tiny judge trained on the built-in judge data

1. agrees with the ground truth on at least 75% of held-out pairs (builtin:arith-pairs:test), and
2. its preference dataset, sampled from the SFT model, trains a DPO model that beats that SFT
   model on held-out exact match.

Both run the quickstart's own stages (`judge-model`, `judge`, `dpo-rlaif`) on the quickstart's SFT;
the judge model trains for JUDGE_STEPS instead of the quickstart's shorter run.

Run with `make test-slow` (or `pytest -m slow tests/integration/test_judge_acceptance.py`).
"""

from __future__ import annotations

import pytest
from conftest import QUICKSTART, eval_report, ok, run_cli

JUDGE_STEPS = 1500      # updates of 16 rows; the quickstart's 500 agreed on 0.535 of held-out pairs


@pytest.mark.slow
def test_tiny_judge_agrees_with_the_truth_and_its_preferences_improve_the_policy(quickstart_store):
    store = quickstart_store
    longer = ("--set", f"stages.judge-model.max_steps={JUDGE_STEPS}", "--set", "stages.judge-model.out=judge-model")
    ok(run_cli("run", QUICKSTART, "--only", "judge-model", *longer, store=store, timeout=3600))

    ok(run_cli("judge", "--prompts", "builtin:arith-pairs:test", "--judge", "judge-model", "--output", "pairs",
               "--out", "judge-check", store=store))
    truth = eval_report(store, "judge-check")["ground_truth"]
    assert truth["pairs"] == 200
    assert truth["agreement"] >= 0.75, truth

    ok(run_cli("run", QUICKSTART, "--only", "judge", "--only", "dpo-rlaif", *longer, store=store, timeout=3600))
    dpo = eval_report(store, "quickstart-dpo-rlaif")
    sft_exact = eval_report(store, "quickstart-sft")["exact_match"]
    assert dpo["exact_match_before"] == pytest.approx(sft_exact)
    assert dpo["exact_match"] > sft_exact, (dpo["exact_match"], sft_exact)
