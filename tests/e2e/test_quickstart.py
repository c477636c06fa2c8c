"""recipes/quickstart.yaml end to end: at smoke size in `make test`, at full size in `make test-slow`.

Smoke: every stage runs (the SFT and judge model are the session's shared artifacts, reused
by fingerprint), the summary and report.md hold every stage side by side, and a rerun reuses
everything in seconds. Full (slow): over seeds 0, 1, 2, every RL/preference stage beats the
SFT model it started from on held-out exact match, its mean interval clear of zero, the RM and the judge
reach the issue's bars (the README's table).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ok, run_cli
from e2e.oracle_judge import oracle_judge

from llmpost.artifacts.store import Store
from llmpost.pipeline.recipe import load_recipe

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
SMOKE = Path(__file__).parent / "quickstart-smoke.yaml"
ENV = {"COLUMNS": "200"}
PREFERENCE_AND_RL = ("dpo", "ppo", "dpo-rlaif", "grpo")


def summary(store: Path) -> dict[str, dict]:
    record = Store(store).resolve("run-quickstart")
    return {row["id"]: row for row in json.loads((record.path / "summary.json").read_text())["stages"]}


def test_quickstart_at_smoke_size_runs_every_stage_and_reruns_instantly(sft_store):
    store = sft_store
    with oracle_judge() as url:
        served = ["--config", SMOKE, "--set", f"stages.judge.judge.base_url={url}"]
        plan = ok(run_cli("run", QUICKSTART, *served, "--dry-run", store=store, env=ENV))
        sft_line = next(line for line in plan.stdout.splitlines() if line.startswith("│ sft "))
        assert "identical fingerprint" in sft_line, "never write a new `sft` into the shared store"

        ok(run_cli("run", QUICKSTART, *served, store=store, env=ENV, timeout=1800))
        started = time.time()
        again = ok(run_cli("run", QUICKSTART, *served, store=store, env=ENV))
        rerun_s = time.time() - started

    rows = summary(store)
    assert list(rows) == list(load_recipe(QUICKSTART).stages)
    assert rows["sft"]["ref"] == Store(store).resolve("sft").ref and rows["sft"]["status"] == "reused"
    assert all(row["status"] == "ran" for sid, row in rows.items() if sid != "sft")
    for stage in PREFERENCE_AND_RL:
        assert rows[stage]["start"] == "sft", "each starts from the recipe's SFT"
        assert isinstance(rows[stage]["exact_match"], float) and isinstance(rows[stage]["exact_match_before"], float)
    record = Store(store).resolve("run-quickstart")
    assert {p["ref"] for p in record.manifest["parents"]} == {row["ref"] for row in rows.values()}
    report = (record.path / "report.md").read_text()
    assert all(f"| {sid} |" in report for sid in rows)
    assert (record.path / "plots" / "exact_match.png").is_file()

    assert rerun_s < 10, f"the all-reused rerun took {rerun_s:.1f}s"
    assert again.stderr.count(": reuse — identical fingerprint") == len(rows)
    assert [a.ref for a in Store(store).list("run-quickstart")] == ["run-quickstart@v1"]


@pytest.mark.slow
def test_quickstart_over_three_seeds_gains_at_every_stage_with_intervals_clear_of_zero(store):
    """The README's table: `--seeds 0,1,2` at full size (26 minutes on one thread, as the suite runs it)."""
    ok(run_cli("run", QUICKSTART, "--seeds", "0,1,2", store=store, env=ENV, timeout=3 * 3600))
    record = json.loads((Store(store).resolve("run-quickstart").path / "summary.json").read_text())
    means = {row["id"]: row for row in record["over_seeds"]}
    for stage, at_least in {"dpo": 0.05, "ppo": 0.03, "dpo-rlaif": 0.0, "grpo": 0.05}.items():
        low, _ = means[stage]["exact_match_delta_ci"]
        assert low > 0 and means[stage]["exact_match_delta"] >= at_least, (stage, means[stage])
    per_seed = [row for row in record["stages"] if row["id"] in ("rm", "judge")]
    assert all(row["metrics"]["accuracy"] >= 0.80 for row in per_seed if row["id"] == "rm"), per_seed
    agreement = [row["metrics"]["ground_truth_agreement"] for row in per_seed if row["id"] == "judge"]
    assert len(agreement) == 3 and sum(agreement) / 3 >= 0.75, agreement

    again = ok(run_cli("run", QUICKSTART, "--seeds", "0,1,2", store=store, env=ENV))
    assert again.stderr.count(": reuse — identical fingerprint") == len(record["stages"]), "a rerun reuses every stage"


@pytest.mark.slow
def test_quickstart_killed_in_its_third_stage_resumes_it(tmp_path):
    """Stage 3 (dpo) is killed once it has a checkpoint; the rerun reuses sft and rm and resumes dpo."""
    store = tmp_path / "store"
    third = list(load_recipe(QUICKSTART).stages)[2]
    with oracle_judge() as url:
        args = ["run", QUICKSTART, "--config", SMOKE, "--set", f"stages.judge.judge.base_url={url}",
                "--set", f"stages.{third}.max_steps=60"]
        env = {**os.environ, **ENV, "LLMPOST_STORE": str(store)}
        proc = subprocess.Popen([sys.executable, "-m", "llmpost", *map(str, args)], env=env, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 1800
        while not list((store / ".tmp").glob(f"work-quickstart-{third}-*/checkpoint-*/trainer_state.json")):
            assert proc.poll() is None and time.time() < deadline, f"no checkpoint in `{third}`"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        ok(run_cli(*args, store=store, env=ENV, timeout=3600))

    rows = summary(store)
    assert [rows[s]["status"] for s in list(rows)[:3]] == ["reused", "reused", "resumed"]
    assert list(rows) == list(load_recipe(QUICKSTART).stages)
    assert all(isinstance(rows[s]["exact_match"], float) for s in PREFERENCE_AND_RL)
