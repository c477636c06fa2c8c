"""`llmpost judge` end to end with a local judge: the dataset artifact, its lineage, the cache, the report, errors."""

from __future__ import annotations

import json

import pytest
from conftest import ok, run_cli
from integration.judge_setup import JUDGE, garbled_pairs, with_tiny_judge

from llmpost.artifacts.store import Store
from llmpost.data.load import load_rows
from llmpost.data.preferences import to_pairs, to_rankings
from llmpost.evaluation.answers import is_correct


@pytest.fixture(scope="module")
def judged(sft_store):
    """A store with `sft`, `tiny-judge` and `prefs`: 3 samples for each of 16 prompts from `sft`, judged."""
    with_tiny_judge(sft_store)
    proc = ok(run_cli("judge", "--policy", "sft", "--prompts", "builtin:arith-prompts:test", "--judge", JUDGE,
                      "--samples", "3", "--max-prompts", "16", "--out", "prefs", "--set", "temperature=1.5",
                      "--set", "test_fraction=0.25", store=sft_store))
    return sft_store, proc


def stderr_of(proc) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(proc.stderr.split())


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_writes_a_preference_dataset_with_lineage_and_report(judged):
    store, _ = judged
    art = Store(store).resolve("prefs")
    files = {p.name for p in art.path.iterdir()}
    assert {"manifest.json", "config.yaml", "eval.json", "README.md", "judgments.jsonl", "data"} <= files
    train = read_jsonl(art.path / "data" / "train.jsonl")
    assert train and all(row["answer"] for row in train)
    rankings = to_rankings(train, "prefs")  # the format rm and dpo read
    assert all(len(set(r.ranks)) > 1 for r in rankings)  # no row without a preference

    parents = {p["id"] for p in art.manifest["parents"]}
    assert parents == {Store(store).resolve("sft").id, Store(store).resolve(JUDGE).id}
    assert art.manifest["datasets"][0]["ref"] == "builtin:arith-prompts:test"

    report = json.loads((art.path / "eval.json").read_text())
    judgments = read_jsonl(art.path / "judgments.jsonl")
    assert report["judgments"] == len(judgments) == 2 * report["pairs_judged"] > 0
    assert report["sampled"] == 48 and report["prompts"] == 16
    for key in ("position_consistency", "tie_rate", "parse_failure_rate"):
        assert 0.0 <= report[key] <= 1.0
    kinds = report["outcomes"]
    assert sum(kinds.values()) == report["pairs"]
    decided = kinds["consistent"]
    assert report["tie_rate"] == round(1 - decided / report["pairs_judged"], 4)
    truth = report["ground_truth"]
    assert truth is not None and truth["pairs"] >= 0
    tokens = report["tokens"][f"local:{JUDGE}"]
    assert tokens["requests"] + tokens["cache_hits"] == len(judgments)
    assert tokens["prompt_tokens"] > 50 * tokens["requests"]  # judge prompts hold a question and two answers
    assert art.manifest["metrics"]["rows_train"] == len(train)


def test_every_judgment_is_asked_in_both_orders(judged):
    store, _ = judged
    judgments = read_jsonl(Store(store).resolve("prefs").path / "judgments.jsonl")
    asked = {(j["group"], j["first"], j["second"]) for j in judgments}
    assert all((g, b, a) in asked for g, a, b in asked)


def test_rerun_is_served_from_the_cache(judged):
    store, first = judged
    ok(run_cli("judge", "--policy", "sft", "--prompts", "builtin:arith-prompts:test", "--judge", JUDGE,
               "--samples", "3", "--max-prompts", "16", "--out", "prefs", "--set", "temperature=1.5",
               "--set", "test_fraction=0.25", store=store))
    v1, v2 = Store(store).resolve("prefs@v1"), Store(store).resolve("prefs@v2")
    metrics = v2.manifest["metrics"]
    assert metrics["judge_requests"] == 0 and metrics["judge_tokens"] == 0
    assert metrics["judge_cache_hits"] == v1.manifest["metrics"]["judge_requests"] > 0
    assert (v1.path / "data" / "train.jsonl").read_bytes() == (v2.path / "data" / "train.jsonl").read_bytes()


def test_dpo_and_rm_take_the_artifact_by_ref(judged):
    store, _ = judged
    pairs = to_pairs(load_rows("prefs", artifact_resolver=lambda ref: Store(store).resolve(ref).path).rows, "prefs")
    assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
    proc = ok(run_cli("dpo", "--model", "sft", "--data", "prefs", "--out", "dpo-from-judge", "--set", "max_steps=2",
                      "--set", "eval.enabled=false", "--set", "eval_pairs=prefs:test", "--batch-size", "4",
                      store=store))
    dpo = Store(store).resolve("dpo-from-judge")
    assert Store(store).resolve("prefs").id in {p["id"] for p in dpo.manifest["parents"]}, proc.stderr


def test_judging_responses_from_a_dataset_measures_agreement_with_the_truth(sft_store):
    store = with_tiny_judge(sft_store)
    data = garbled_pairs(store, 12)
    ok(run_cli("judge", "--prompts", str(data), "--judge", JUDGE, "--output", "pairs", "--out", "judged-pairs",
               store=store))
    art = Store(store).resolve("judged-pairs")
    report = json.loads((art.path / "eval.json").read_text())
    assert report["sampled"] == 0 and report["pairs"] == 12
    rows = read_jsonl(data)
    with_truth = sum(1 for r in rows if is_correct(r["chosen"], r["answer"]) != is_correct(r["rejected"], r["answer"]))
    truth = report["ground_truth"]
    assert truth["pairs"] == with_truth > 0
    assert truth["agreement"] >= 0.9  # the judge learned to prefer the well-formed answer
    written = read_jsonl(art.path / "data" / "train.jsonl") + (
        read_jsonl(art.path / "data" / "test.jsonl") if (art.path / "data" / "test.jsonl").exists() else [])
    assert len(written) == report["outcomes"]["consistent"]
    assert all({"prompt", "chosen", "rejected"} <= set(r) for r in written)
    assert {p["id"] for p in art.manifest["parents"]} == {Store(store).resolve(JUDGE).id}


def test_without_a_judge_the_error_says_how_to_name_one(store):
    proc = run_cli("judge", "--policy", "tiny", "--max-prompts", "2", store=store)
    assert proc.returncode == 2
    assert "no judge given" in stderr_of(proc) and "--judge" in stderr_of(proc)


def test_prompts_without_responses_need_a_policy(store):
    proc = run_cli("judge", "--prompts", "builtin:arith-prompts:test", "--judge", "tiny", store=store)
    assert proc.returncode == 2
    assert "no responses" in stderr_of(proc) and "--policy" in stderr_of(proc)


def test_flag_mistakes_are_usage_errors(store, monkeypatch):
    proc = run_cli("judge", "--policy", "tiny", "--judge", "judge-model", "--judge-model", "x", store=store)
    assert proc.returncode == 2 and "--judge-model goes with an HTTP judge" in stderr_of(proc)
    proc = run_cli("judge", "--policy", "tiny", "--judge", "http://127.0.0.1:9/v1", "--judge-model", "m",
                   "--api-key-env", "LLMPOST_TEST_UNSET_KEY", "--max-prompts", "1", "--samples", "2", store=store,
                   env={"LLMPOST_TEST_UNSET_KEY": ""})
    assert proc.returncode == 2 and "LLMPOST_TEST_UNSET_KEY" in stderr_of(proc) and "not set" in stderr_of(proc)
    proc = run_cli("judge", "--judge", "judge-model", "--set", "judge.template=Q {question} {a}", "--print-config",
                   store=store)
    assert proc.returncode == 2 and "missing placeholder {b}" in stderr_of(proc)


def test_print_config_shows_the_judge_block(store):
    proc = ok(run_cli("judge", "--judge", "http://127.0.0.1:8000/v1", "--judge-model", "m", "--api-key-env", "MY_KEY",
                      "--principle", "Prefer correct arithmetic", "--print-config", store=store))
    assert "base_url: http://127.0.0.1:8000/v1" in proc.stdout and "api_key_env: MY_KEY" in proc.stdout
    assert "- Prefer correct arithmetic" in proc.stdout


def test_rank_by_a_verifiable_reward_ranks_right_answers_first(sft_store):
    """A policy's own samples ranked by exact match: no judge model, every right answer above every wrong one."""
    ok(run_cli("judge", "--policy", "sft", "--prompts", "builtin:arith-prompts:test", "--rank-by", "exact_match",
               "--samples", "4", "--max-prompts", "24", "--out", "ranked", "--set", "temperature=1.5",
               "--set", "test_fraction=0.25", store=sft_store))
    art = Store(sft_store).resolve("ranked")
    rows = read_jsonl(art.path / "data" / "train.jsonl") + read_jsonl(art.path / "data" / "test.jsonl")
    assert rows
    for row in rows:
        right = [rank for text, rank in zip(row["responses"], row["ranks"], strict=True) if is_correct(text, row["answer"])]
        wrong = [rank for text, rank in zip(row["responses"], row["ranks"], strict=True) if not is_correct(text, row["answer"])]
        assert right and wrong and max(right) < min(wrong)  # rank 0 is best; only prompts with both are written
    report = json.loads((art.path / "eval.json").read_text())
    assert report["judge"] == "rank_by:exact_match" and report["judgments"] == 0
    assert report["ground_truth"]["agreement"] == 1.0
    assert report["rows"]["prompts_without_preference"] == 24 - len(rows)
    assert (art.path / "judgments.jsonl").read_text() == ""
    assert {p["id"] for p in art.manifest["parents"]} == {Store(sft_store).resolve("sft").id}

    ok(run_cli("rm", "--model", "sft", "--data", "ranked", "--out", "rm-ranked", "--set", "max_steps=2",
               "--set", "eval.data=ranked:test", "--batch-size", "2", store=sft_store))
    rm = Store(sft_store).resolve("rm-ranked")
    assert art.id in {p["id"] for p in rm.manifest["parents"]}


def test_rank_by_mistakes_are_usage_errors(store, tmp_path):
    proc = run_cli("judge", "--policy", "tiny", "--rank-by", "exact_match", "--judge", "tiny", store=store)
    assert proc.returncode == 2 and "both given" in stderr_of(proc) and "--rank-by" in stderr_of(proc)
    proc = run_cli("judge", "--policy", "tiny", "--rank-by", "exact_macth", "--print-config", store=store)
    assert proc.returncode == 2 and "exact_macth" in stderr_of(proc)
    no_answers = tmp_path / "prompts.jsonl"
    no_answers.write_text(json.dumps({"prompt": "What is 2+2?"}) + "\n")
    proc = run_cli("judge", "--policy", "tiny", "--prompts", str(no_answers), "--rank-by", "exact_match",
                   store=store)
    assert proc.returncode == 2 and "'answer' column" in stderr_of(proc)
