"""`llmpost run` end to end on a small recipe at tiny steps: run, kill, resume, reuse, change one stage.

The recipe has three stages: `sft` -> `check` (eval of sft) and `sft` -> `more` (a second,
longer SFT that checkpoints). The module fixture runs it, kills it with SIGKILL while
`more` trains, and reruns it; the tests then check what a user would see.
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

from llmpost.artifacts.store import Store

RECIPE = """\
name: e2e
description: three tiny stages for the runner's tests
defaults:
  seed: 0
  batch_size: 8
  logging_steps: 2
  eval: {max_samples: 8, max_new_tokens: 12}
stages:
  sft:
    uses: sft
    max_steps: 4
    loss_data: null
  check:
    uses: eval
    model: "{{ sft }}"
    max_samples: 8
    max_new_tokens: 12
  more:
    uses: sft
    model: "{{ sft }}"
    max_steps: 40
    loss_data: null
"""
ENV = {"COLUMNS": "200"}


def summary(store: Path) -> dict[str, dict]:
    """The latest run record's stages, by id."""
    record = Store(store).resolve("run-e2e")
    return {row["id"]: row for row in json.loads((record.path / "summary.json").read_text())["stages"]}


def start_run(recipe: Path, store: Path) -> subprocess.Popen:
    env = {**os.environ, **ENV, "LLMPOST_STORE": str(store)}
    return subprocess.Popen([sys.executable, "-m", "llmpost", "run", str(recipe)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(store: Path, stage_name: str, proc: subprocess.Popen, timeout: float = 600) -> Path:
    """Until the stage's work dir holds a complete checkpoint; returns it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted((store / ".tmp").glob(f"work-{stage_name}-*/checkpoint-*/trainer_state.json"))
        if found:
            return found[0].parent
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before a checkpoint:\n{proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A store where the recipe was killed during its third stage and then rerun to the end."""
    root = tmp_path_factory.mktemp("recipe-run")
    recipe, store = root / "e2e.yaml", root / "store"
    recipe.write_text(RECIPE)
    proc = start_run(recipe, store)
    checkpoint = wait_for_checkpoint(store, "e2e-more", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    killed_at = {a.name for a in Store(store).list()}
    rerun = ok(run_cli("run", recipe, store=store, env=ENV))
    return {"recipe": recipe, "store": store, "killed_at": killed_at, "checkpoint": checkpoint, "rerun": rerun}


def test_kill_during_third_stage_then_rerun_resumes_it(resumed):
    store = resumed["store"]
    assert resumed["killed_at"] == {"e2e-sft", "e2e-check"}, "stages 1-2 finish; the killed stage leaves nothing"
    rows = summary(store)
    assert list(rows) == ["sft", "check", "more"]
    assert rows["sft"]["status"] == rows["check"]["status"] == "reused"
    assert rows["more"]["status"] == "resumed" and rows["more"]["resumed_from_step"] > 0
    assert "resuming an interrupted run from step" in resumed["rerun"].stderr

    more = Store(store).resolve("e2e-more")
    assert more.manifest["metrics"]["steps"] == 40  # it finished the run, not a fresh 40 on top
    logged = [json.loads(line)["step"] for line in (more.path / "metrics.jsonl").read_text().splitlines()]
    assert logged[0] <= 2 and logged[-1] >= 38, "metrics.jsonl covers the steps before and after the kill"
    assert not list((store / ".tmp").glob("work-e2e-more-*")), "checkpoints are dropped once the stage is final"
    report = (Store(store).resolve("run-e2e").path / "report.md").read_text()
    for stage in ("sft", "check", "more"):
        assert f"| {stage} |" in report
    assert (Store(store).resolve("run-e2e").path / "plots" / "exact_match.png").stat().st_size > 1000


def test_unchanged_rerun_reuses_every_stage_quickly(resumed):
    started = time.time()
    proc = ok(run_cli("run", resumed["recipe"], store=resumed["store"], env=ENV))
    elapsed = time.time() - started
    assert elapsed < 10, f"an all-reused run took {elapsed:.1f}s:\n{proc.stderr[-3000:]}"
    for stage in ("sft", "check", "more"):
        assert f"{stage} ({'eval' if stage == 'check' else 'sft'}): reuse" in proc.stderr
    assert " ran " not in proc.stdout and "resumed" not in proc.stdout
    assert len(Store(resumed["store"]).list("run-e2e")) == 1, "same stage artifacts -> the same run record"


def test_changing_one_stage_reruns_it_and_nothing_else(resumed):
    store = resumed["store"]
    before = {a.name: a.ref for a in Store(store).list()}
    dry = ok(run_cli("run", resumed["recipe"], "--dry-run", "--set", "stages.check.max_samples=6", store=store, env=ENV))
    assert "config changed since e2e-check@v1: max_samples: 8 -> 6" in dry.stdout

    ok(run_cli("run", resumed["recipe"], "--set", "stages.check.max_samples=6", store=store, env=ENV))
    rows = summary(store)
    assert rows["check"]["status"] == "ran" and rows["check"]["ref"] == "e2e-check@v2"
    assert rows["sft"]["ref"] == before["e2e-sft"] and rows["more"]["ref"] == "e2e-more@v1"
    assert Store(store).resolve("e2e-check@v2").manifest["config"]["max_samples"] == 6


def test_dry_run_after_an_upstream_change_reruns_downstream(resumed):
    proc = ok(run_cli("run", resumed["recipe"], "--dry-run", "--set", "stages.sft.max_steps=5",
                      store=resumed["store"], env=ENV))
    lines = {line.split("│")[1].strip(): line for line in proc.stdout.splitlines() if line.count("│") > 4}
    assert "config changed since e2e-sft@v1: max_steps: 4 -> 5" in lines["sft"]
    assert "after `sft` runs" in lines["check"] and "after `sft` runs" in lines["more"]
    assert not Store(resumed["store"]).list("e2e-sft")[1:], "a dry run runs nothing"


def test_only_and_force(resumed):
    store = resumed["store"]
    proc = ok(run_cli("run", resumed["recipe"], "--only", "check", "--force", "check", "--dry-run",
                      store=store, env=ENV))
    lines = {line.split("│")[1].strip(): line for line in proc.stdout.splitlines() if line.count("│") > 4}
    assert "reuse" in lines["sft"] and "forced" in lines["check"] and "not selected" in lines["more"]

    changed = run_cli("run", resumed["recipe"], "--only", "check", "--set", "stages.sft.max_steps=5",
                      store=store, env=ENV)
    assert changed.returncode == 2
    assert "stages.sft: needed by check but has no reusable artifact" in changed.stderr
    assert "--until sft" in changed.stderr


def test_a_failed_stage_skips_what_needs_it_and_the_rest_still_runs(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"foo": 1}\n{"foo": 2}\n')  # loads, but has no prompt/answer: the stage fails when it runs
    recipe = tmp_path / "partial.yaml"
    recipe.write_text(f"""\
name: partial
stages:
  bad: {{uses: eval, data: "{bad}", max_samples: 2}}
  after-bad: {{uses: eval, model: "{{{{ bad }}}}", max_samples: 2}}
  good: {{uses: eval, max_samples: 2, max_new_tokens: 4}}
""")
    proc = run_cli("run", recipe, store=tmp_path / "store", env=ENV)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "stage `bad` failed" in proc.stderr and "fits no" in proc.stderr
    rows = {line.split()[0].split("@")[0]: line for line in proc.stdout.splitlines() if line.strip()}  # by artifact
    assert "failed" in rows["partial-bad"] and "skipped" in rows["partial-after-bad"] and "ran" in rows["partial-good"]
    assert "bad failed:" in proc.stdout and "after-bad skipped: needs `bad`" in proc.stdout
    store = Store(tmp_path / "store")
    assert [a.name for a in store.list()] == ["partial-good"], "no record of an unfinished run"


def plan_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.count("│") > 4]


def test_seeds_run_the_flow_per_seed_and_the_record_gives_the_mean_change_with_its_interval(resumed):
    store, recipe = resumed["store"], resumed["recipe"]
    dry = ok(run_cli("run", recipe, "--seeds", "0,1", "--until", "check", "--dry-run", store=store, env=ENV))
    assert "seed 0" in dry.stdout and "seed 1" in dry.stdout
    lines = plan_lines(dry.stdout)
    assert any("e2e-sft@v1" in line and "reuse" in line for line in lines), "seed 0 is the run already made"
    assert any("e2e-sft-seed1" in line and "no earlier run" in line for line in lines)
    assert not any("e2e-more" in line and " run " in line for line in lines), "--until applies to every seed"

    proc = ok(run_cli("run", recipe, "--seeds", "0,1", "--until", "check", store=store, env=ENV))
    record = Store(store).resolve("run-e2e")
    summary = json.loads((record.path / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    rows = {(row["seed"], row["id"]): row for row in summary["stages"]}
    assert set(rows) == {(0, "sft"), (0, "check"), (1, "sft"), (1, "check")}
    assert rows[0, "sft"]["ref"] == "e2e-sft@v1" and rows[0, "sft"]["status"] == "reused"
    assert rows[1, "sft"]["ref"] == "e2e-sft-seed1@v1" and rows[1, "sft"]["status"] == "ran"
    seed1 = Store(store).resolve("e2e-sft-seed1")
    assert seed1.manifest["seed"] == 1 and seed1.manifest["config"]["max_steps"] == 4
    assert Store(store).resolve("e2e-check-seed1").manifest["config"]["model"] == "e2e-sft-seed1@v1"

    means = {row["id"]: row for row in summary["over_seeds"]}
    assert set(means) == {"sft", "check"}
    sft = means["sft"]
    assert sft["seeds"] == [0, 1] and sft["start"] == "tiny" and sft["n_items"] == 8
    # read off each seed's items, the mean agrees with the changes each seed's stage recorded itself
    assert sft["exact_match_delta"] == pytest.approx((rows[0, "sft"]["exact_match_delta"]
                                                      + rows[1, "sft"]["exact_match_delta"]) / 2)
    assert sft["exact_match"] == pytest.approx((rows[0, "sft"]["exact_match"] + rows[1, "sft"]["exact_match"]) / 2)
    low, high = sft["exact_match_delta_ci"]
    assert low <= sft["exact_match_delta"] <= high
    assert means["check"]["exact_match_delta"] is None, "an eval stage has no start to change from"
    report = (record.path / "report.md").read_text()
    assert "seeds 0, 1" in report and "| **sft** | **mean of 2** |" in report and "--seeds 0,1" in report
    assert "two-way bootstrap" in report
    assert "mean" in proc.stdout and "e2e-sft-seed1@v1" in proc.stdout

    forced = ok(run_cli("run", recipe, "--seeds", "0,1", "--only", "check", "--force", "check", "--dry-run",
                        store=store, env=ENV))
    checks = [line for line in plan_lines(forced.stdout) if line.split("│")[1].strip() == "check"]
    assert len(checks) == 2 and all("forced" in line for line in checks), "--force applies to every seed"
    again = ok(run_cli("run", recipe, "--seeds", "0,1", "--until", "check", store=store, env=ENV))
    assert "reused" in again.stdout and Store(store).resolve("run-e2e").ref == record.ref, "same artifacts, same record"
