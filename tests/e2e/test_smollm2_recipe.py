"""recipes/smollm2-cpu.yaml on the real model at smoke size, and the stages it leaves out, on SmolLM2.

Every stage of the real-model flow (grpo, dpo; sft, its own answers ranked by exact match, an
rm on them, ppo from the sft model against that rm) takes one step on SmolLM2-135M-Instruct in
one `llmpost run`; the module's other tests take its artifacts
further: the reward model scores pairs, PPO trains on a verifiable reward, SmolLM2 judges
its own samples. The learning claims are the recipe's full-size run (README, "the real-model
flow"); here each stage must run on a BPE tokenizer and a ChatML template and leave
artifacts that load without llmpost.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store
from llmpost.evaluation.report import read_items

ROOT = Path(__file__).parents[2]
RECIPE = ROOT / "recipes" / "smollm2-cpu.yaml"
SMOKE = Path(__file__).parent / "smollm2-smoke.yaml"
STARTING_FROM_SMOLLM2 = ("grpo", "dpo", "sft")


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> Path:
    """A store after the real-model recipe at smoke size."""
    store = tmp_path_factory.mktemp("smol-flow")
    ok(run_cli("run", RECIPE, "--config", SMOKE, store=store, env={"COLUMNS": "200"}, timeout=1800))
    return store


def summary(store: Path) -> dict[str, dict]:
    record = Store(store).resolve("run-smollm2-cpu")
    return {row["id"]: row for row in json.loads((record.path / "summary.json").read_text())["stages"]}


def test_every_stage_runs_on_smollm2_and_is_evaluated_against_it(flow):
    rows = summary(flow)
    assert set(rows) == {"grpo", "dpo", "sft", "answers", "rm", "ppo"}
    assert all(row["status"] == "ran" for row in rows.values())
    for stage in STARTING_FROM_SMOLLM2:
        assert isinstance(rows[stage]["exact_match_before"], float) and isinstance(rows[stage]["exact_match"], float)
        base = Store(flow).resolve(rows[stage]["ref"]).manifest["base_model"]
        assert base["id"] == "smollm2" and len(base["gguf"]["sha256"]) == 64
    ppo_parents = {p["ref"] for p in Store(flow).resolve(rows["ppo"]["ref"]).manifest["parents"]}
    assert {rows["sft"]["ref"], rows["rm"]["ref"]} <= ppo_parents, "PPO starts from the SFT model, against the rm"
    rm_parents = {p["ref"] for p in Store(flow).resolve(rows["rm"]["ref"]).manifest["parents"]}
    assert {rows["sft"]["ref"], rows["answers"]["ref"]} <= rm_parents, "the rm learns the SFT model's ranked answers"
    assert rows["ppo"]["start"] == "sft" and isinstance(rows["ppo"]["exact_match_delta"], float), \
        "PPO's change is measured from the SFT model"


def test_the_base_models_answers_are_generated_once_for_all_stages(flow):
    """Each stage's "before" is SmolLM2 on the same problems: the same answers, kept in $LLMPOST_CACHE."""
    rows = summary(flow)
    before = {stage: [(i.id, i.output) for i in read_items(Store(flow).resolve(rows[stage]["ref"]).path, "before")]
              for stage in STARTING_FROM_SMOLLM2}
    assert len(before["grpo"]) == 4
    assert before["grpo"] == before["dpo"] == before["sft"]


def test_the_reward_model_scores_pairs(flow, tmp_path):
    from llmpost.data.builtin import load_builtin

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in load_builtin("arith-pairs", "test")[:6]))
    out = tmp_path / "scored.jsonl"
    ok(run_cli("score", summary(flow)["rm"]["ref"], "--data", pairs, "--output", out, store=flow))
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(scored) == 6, scored[:1]
    assert all(len(row["scores"]) == 2 and all(isinstance(x, float) for x in row["scores"]) for row in scored)


def test_ppo_on_a_verifiable_reward(flow):
    ok(run_cli("ppo", "--policy", "smollm2", "--lora", "--reward", "exact_match", "--out", "ppo-exact",
               "--set", "max_steps=1", "--set", "batch_size=4", "--set", "ppo.mini_batch_size=4",
               "--set", "rollout.max_new_tokens=8", "--set", "eval.max_samples=4", "--set", "eval.max_new_tokens=16",
               store=flow))
    metrics = Store(flow).resolve("ppo-exact").manifest["metrics"]
    assert "exact_match" in metrics


def test_smollm2_judges_its_own_samples(flow):
    """Sampling and judging both run on the real model, each pair asked in both orders.

    SmolLM2-135M names the first answer whatever it holds ("A" in both orders), so it decides
    no pair; the stage then writes no empty dataset and says why, with the outcomes counted.
    A judge that does decide pairs writes them (test_judge_cli.py).
    """
    proc = run_cli("judge", "--policy", "smollm2", "--judge", "smollm2", "--prompts", "builtin:arith-prompts:test",
                   "--samples", "2", "--max-prompts", "4", "--out", "self-judged", "--set", "max_new_tokens=16",
                   "--set", "judge.max_new_tokens=4", "--set", "judge.system=Reply with one letter, A or B.",
                   store=flow)
    if proc.returncode == 0:
        report = json.loads((Store(flow).resolve("self-judged").path / "eval.json").read_text())
        assert report["sampled"] == 8 and report["judgments"] == 2 * report["pairs_judged"] > 0
        return
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 1 and "the judge decided no pair" in message, message
    assert '"inconsistent":' in message and "its first replies:" in message
    assert Store(flow).try_resolve("self-judged") is None, "nothing is published"
