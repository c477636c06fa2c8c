"""`report_to`: the key on every stage that reports, what it refuses, what it leaves alone, the Tracker's rules."""

from __future__ import annotations

import pytest

from llmpost.artifacts.store import Store
from llmpost.config.resolve import resolve
from llmpost.errors import ConfigError
from llmpost.pipeline.execute import fingerprint_of
from llmpost.pipeline.recipe import build_recipe
from llmpost.reporting.tracking import Tracker, installed, require
from llmpost.stages import load_stage
from llmpost.stages.context import StageContext

REPORTING = ["sft", "rm", "dpo", "kto", "grpo", "ppo", "judge"]


@pytest.mark.parametrize("stage", REPORTING)
def test_every_reporting_stage_has_the_key_off_by_default(stage):
    config = load_stage(stage).Config
    assert config().report_to == []
    assert config(report_to="tensorboard, trackio").report_to == ["tensorboard", "trackio"]  # as HF spells it


def test_trainer_report_to_is_refused_in_favour_of_the_key():
    with pytest.raises(ConfigError) as exc:
        resolve(load_stage("dpo").Config, [{"trainer": {"report_to": "wandb"}}])
    assert "trainer.report_to: llmpost sets this itself; use `report_to` (--report-to)" in str(exc.value)


def test_a_tracker_does_not_change_the_fingerprint(tmp_path):
    """Turning a tracker on must not rerun a stage a recipe could reuse, nor orphan an interrupted run's checkpoints."""
    config = load_stage("sft").Config
    ctx = StageContext(stage="sft", name="sft", store=Store(tmp_path))
    assert fingerprint_of("sft", config(), ctx) == fingerprint_of("sft", config(report_to=["tensorboard"]), ctx)


def test_recipe_defaults_reach_every_stage_that_reports():
    recipe = build_recipe({"name": "demo", "defaults": {"report_to": ["tensorboard"]}, "stages": {
        "sft": {"uses": "sft"}, "check": {"uses": "eval", "model": "{{ sft }}"}}})
    assert recipe.stages["sft"].config.report_to == ["tensorboard"]
    assert not hasattr(recipe.stages["check"].config, "report_to")  # eval trains nothing and reports nothing


def test_a_missing_package_is_named_with_its_install_command(tmp_path, monkeypatch):
    (tmp_path / "wandb").mkdir()  # what a wandb run leaves in the working directory: not the library
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not installed("wandb")
    with pytest.raises(ConfigError) as exc:
        require(["tensorboard", "wandb"])
    assert exc.value.hint.startswith("pip install wandb")
    require(["none"])  # off: nothing to install


class Sink:
    """A tracker that records what it is sent, or fails on it."""

    def __init__(self, name: str, fail: bool = False):
        self.name, self.fail, self.logged, self.closed = name, fail, [], None

    def log(self, values, step):
        if self.fail:
            raise OSError("disk full")
        self.logged.append((step, values))

    def close(self, failed=False):
        if self.fail:
            raise OSError("disk full")
        self.closed = "failed" if failed else "finished"


def test_tracker_sends_finite_numbers_and_drops_a_failing_sink():
    good, bad, warnings = Sink("good"), Sink("bad", fail=True), []
    with Tracker([bad, good], warn=warnings.append) as tracker:
        tracker.log({"step": 3, "time": 1.5, "loss": 0.5, "n": 4, "nan": float("nan"), "flag": True, "s": "x"}, 3)
        tracker.log({"loss": 0.25}, 4)
    assert good.logged == [(3, {"loss": 0.5, "n": 4}), (4, {"loss": 0.25})]
    assert good.closed == "finished" and bad.closed is None  # dropped at its failure, never written to again
    assert len(warnings) == 1 and "report_to: bad failed (OSError: disk full)" in warnings[0]


def test_tracker_marks_its_runs_failed_when_the_stage_fails():
    sink = Sink("good")
    with pytest.raises(RuntimeError), Tracker([sink]):
        raise RuntimeError("training diverged")
    assert sink.closed == "failed"


def test_a_tracker_failing_to_finish_is_a_warning_and_the_others_finish():
    bad, good, warnings = Sink("bad", fail=True), Sink("good"), []
    Tracker([bad, good], warn=warnings.append).close()
    assert good.closed == "finished" and warnings == ["report_to: bad could not finish its run (OSError: disk full)"]
