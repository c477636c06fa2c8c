"""`llmpost compare A B` on real tiny artifacts: the session's shared SFT against itself and the untrained tiny model."""

from __future__ import annotations

import json

from conftest import eval_report, ok, run_cli

from llmpost.artifacts.store import Store


def compare(store, *args: str) -> dict:
    return json.loads(ok(run_cli("compare", *args, "--json", store=store)).stdout)


def files_of(store) -> dict[str, float]:
    """Every file in the store and when it last changed."""
    return {str(p.relative_to(store)): p.stat().st_mtime for p in store.rglob("*") if p.is_file()}


def test_a_model_against_itself_reads_its_items_and_changes_nothing(sft_store):
    result = compare(sft_store, "sft", "sft")
    n = eval_report(sft_store, "sft")["n_eval"]
    assert result["n"] == n and result["data"] == "builtin:arith-prompts:test", "the data sft's own eval used"
    assert result["delta"] == 0 and result["delta_ci"] == [0, 0]
    assert result["mcnemar"]["right_to_wrong"] == result["mcnemar"]["wrong_to_right"] == 0
    for side in ("a", "b"):
        assert result[side]["resolved"] == Store(sft_store).resolve("sft").ref
        assert (result[side]["stored"], result[side]["evaluated"]) == (n, 0), "nothing to evaluate: it is all stored"


def test_the_untrained_model_against_the_sft_shows_a_real_gain(sft_store):
    before = files_of(sft_store)
    result = compare(sft_store, "tiny", "sft")
    report = eval_report(sft_store, "sft")
    assert result["a"]["evaluated"] == result["n"] == report["n_eval"] and result["b"]["stored"] == result["n"]
    # measured again here, the untrained model scores what the SFT stage measured before training
    assert result["a"]["exact_match"] == report["exact_match_before"]
    assert result["b"]["exact_match"] == report["exact_match"]
    low, high = result["delta_ci"]
    assert 0 < low <= result["delta"] <= high
    assert result["mcnemar"]["wrong_to_right"] > result["mcnemar"]["right_to_wrong"]
    assert set(result) >= {"data", "rows", "n", "a", "b", "delta", "delta_ci", "mcnemar", "intervals"}
    assert files_of(sft_store) == before, "compare writes nothing into the store"


def test_text_output_and_items_an_artifact_does_not_hold(sft_store):
    n = eval_report(sft_store, "sft")["n_eval"]
    proc = ok(run_cli("compare", "sft", "tiny", "--max-samples", str(n + 4), store=sft_store))
    out = proc.stdout
    assert f"first {n + 4} rows: {n + 4} items" in out
    assert f"items: {n} from its eval_items.jsonl, 4 evaluated now" in out  # sft holds only its own n
    assert f"items: {n + 4} evaluated now" in out  # tiny is no artifact
    assert "B is worse" in out and "right->wrong" in out and "wrong->right 0" in out
    assert "evaluating" in proc.stderr and "evaluating" not in out


def test_a_missing_ref_exits_2_naming_the_refs_that_exist(sft_store):
    proc = run_cli("compare", "sft", "sfd", store=sft_store)
    assert proc.returncode == 2
    assert "no artifact named `sfd`" in proc.stderr and "did you mean `sft`?" in proc.stderr
    assert "Traceback" not in proc.stderr
    version = run_cli("compare", "sft@v9", "sft", store=sft_store)
    assert version.returncode == 2 and "`sft` has v1" in version.stderr
