"""`--reward prm:REF` in `llmpost grpo` and `llmpost ppo` (aggregated and dense), on the real tiny model.

The PRMs are untrained (the tiny model with a one-output token-classification head): these
tests check the wiring a user sees (runs, artifacts, lineage, logged rewards, errors), not
that a PRM teaches anything. The policy is the untrained tiny model: its responses are
random characters, newlines among them, so they have steps, and no SFT fixture is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store

STEPS_PROMPTS = "builtin:arith-steps-prompts"
TINY_RUN = ("--prompts", STEPS_PROMPTS, "--max-steps", "2", "--batch-size", "4", "--set", "eval.max_samples=4")


def save_prm(directory: Path) -> Path:
    """An untrained process reward model in `directory`, loadable as a PRM (token classification, one output)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from llmpost.models.tiny import tiny_path

    torch.manual_seed(0)
    AutoModelForTokenClassification.from_pretrained(tiny_path(), num_labels=1).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_path()).save_pretrained(directory)
    return directory


@pytest.fixture
def prm_store(tmp_path: Path) -> tuple[Path, Path]:
    """(a store holding the PRM artifact `prm`, a plain directory holding the same PRM)."""
    root, directory = tmp_path / "store", save_prm(tmp_path / "prm-dir")
    with Store(root).begin("prm") as pending:  # as `llmpost prm` writes one: the model under model/
        save_prm(pending.dir / "model")
        pending.finalize({"stage": "prm", "base_model": {"id": "tiny"}})
    return root, directory


def metrics_of(store: Path, ref: str) -> list[dict]:
    return [json.loads(line) for line in (Store(store).resolve(ref).path / "metrics.jsonl").read_text().splitlines()]


def test_grpo_with_a_prm_directory(prm_store):
    store, directory = prm_store
    ok(run_cli("grpo", "--model", "tiny", "--reward", f"prm:{directory}:agg=last", *TINY_RUN, "-G", "2",
               "--max-completion-length", "16", "--out", "grpo-prm", store=store))
    art = Store(store).resolve("grpo-prm")
    assert art.manifest["config"]["rewards"] == [f"prm:{directory}:agg=last"]  # a plain directory: the config names it
    assert art.manifest["parents"] == []
    logged = [row[f"rewards/prm:{directory}:agg=last/mean"] for row in metrics_of(store, "grpo-prm")
              if f"rewards/prm:{directory}:agg=last/mean" in row]
    assert logged and all(0.0 <= v <= 1.0 for v in logged)
    report = json.loads((art.path / "eval.json").read_text())
    assert report["rewards"][0]["name"] == f"prm:{directory}:agg=last" and 0.0 <= report["reward"] <= 1.0


def test_ppo_with_dense_process_rewards_from_a_prm_artifact(prm_store):
    store, _ = prm_store
    ok(run_cli("ppo", "--policy", "tiny", "--reward", "prm:prm", "--reward", "exact_match=0.5",
               "--process-rewards", "dense", *TINY_RUN, "--max-new-tokens", "16", "--set", "ppo.mini_batch_size=4",
               "--out", "ppo-prm", store=store))
    art, prm = Store(store).resolve("ppo-prm"), Store(store).resolve("prm")
    assert prm.id in [p["id"] for p in art.manifest["parents"]]  # the PRM artifact is in the lineage
    assert art.manifest["config"]["process_rewards"] == "dense"
    rows = metrics_of(store, "ppo-prm")
    assert len(rows) == 2
    for row in rows:
        assert 0.0 <= row["reward/prm:prm"] <= 1.0 and 0.0 <= row["reward/exact_match"] <= 1.0
        # dense rewards sum to the PRM's aggregate: the whole reward is what an aggregated run would log
        assert row["reward_mean"] == pytest.approx(row["reward/prm:prm"] + 0.5 * row["reward/exact_match"], abs=1e-5)
    assert "the process reward per step (dense)" in (art.path / "README.md").read_text()


@pytest.mark.parametrize("args,message", [
    (["ppo", "--reward", "prm:prm:agg=median"], "agg must be one of min, prod, last, mean"),
    (["ppo", "--reward", "prm:x:bad=1"], "reward prm:x:bad=1: unknown option"),  # ":x:" printed as written
    (["grpo", "--reward", "prm:tiny"], "is not a process reward model"),
    (["ppo", "--reward", "exact_match", "--process-rewards", "dense"], "give exactly one (--reward prm:MY-PRM)"),
])
def test_bad_process_reward_settings_exit_2(store, args, message):
    proc = run_cli(*args, "--max-steps", "1", store=store)
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in said and "Traceback" not in said
