"""Experiment trackers (`report_to`): metrics.jsonl's rows, live, in TensorBoard, Trackio, W&B or MLflow.

One tracking run per artifact, named after it (`NAME/vN`), whose config holds the
artifact's id, ref, stage and fingerprint and the stage's resolved config. Every row a
stage writes to metrics.jsonl goes to each tracker with the same names at the same step
(`MetricsLog` forwards it), so sft, rm, dpo, kto and grpo (through the trainer callback), PPO's
own loop and the judge report alike. The trainers' own integrations stay off
(`report_to="none"` in stages/trainer_args.py): they would log the same values again
under other names (`train/loss`). Only `time` is not sent: each tracker keeps its own clock.

    tensorboard  event files in the artifact's `tensorboard/`, written by torch's SummaryWriter;
                 they travel with the artifact, and `tensorboard --logdir STORE` shows every run
    trackio      the local project `llmpost` (under $TRACKIO_DIR, default ~/.cache/huggingface/trackio)
    wandb        the project $WANDB_PROJECT, else `llmpost`; online or offline as wandb is set up
                 (`wandb login`, WANDB_MODE=offline)
    mlflow       the experiment $MLFLOW_EXPERIMENT_NAME, else `llmpost`, at $MLFLOW_TRACKING_URI
                 (default: mlflow's own)

A run is named for the version its artifact is expected to get (`Pending.expected_version`):
versions are numbered when published, so should another run of the same name publish
first, the tracking run keeps the number it expected; its config's `artifact_id` is the
artifact's id either way.

The packages are imported only when a tracker opens; `require()` checks that they are
installed before any model loads. A tracker that fails mid-run is dropped with a warning:
the run goes on, and metrics.jsonl keeps every row.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmpost.errors import ConfigError

PROJECT = "llmpost"  # trackio's project; wandb's and mlflow's when their environment names none
TENSORBOARD_DIR = "tensorboard"  # inside the artifact
NOT_SENT = ("step", "time")  # metrics.jsonl's bookkeeping: the step is the tracker's own, and so is the clock
PACKAGES = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb", "mlflow": "mlflow"}


def active(report_to: Iterable[str]) -> list[str]:
    """The trackers to open: `report_to` less "none"."""
    return [name for name in report_to if name != "none"]


def require(report_to: Iterable[str]) -> None:
    """Fail, naming the package to install, when a tracker in `report_to` cannot be imported here."""
    missing = [name for name in active(report_to) if not installed(PACKAGES[name])]
    if missing:
        raise ConfigError([f"report_to: {name} needs the `{PACKAGES[name]}` package, which is not installed here"
                           for name in missing],
                          hint=f"pip install {' '.join(PACKAGES[name] for name in missing)}, "
                               "or leave it out of --report-to / report_to")


def installed(package: str) -> bool:
    # A bare directory of that name (wandb leaves ./wandb/ behind) is a namespace package, not the library.
    spec = importlib.util.find_spec(package)
    return spec is not None and spec.origin is not None


@dataclass(frozen=True)
class TrackedRun:
    """What the trackers are told about the run: its name, its artifact's directory, its config."""

    name: str  # NAME/vN
    dir: Path  # the artifact being written; TensorBoard's event files go inside it
    config: dict[str, Any]  # the artifact's id, ref, stage, fingerprint and the stage's resolved config


class Tracker:
    """The trackers one artifact reports to; `log(row, step)` sends a metrics.jsonl row to each of them."""

    def __init__(self, sinks: list, warn: Callable[[str], None] = print):
        self.sinks = sinks
        self.warn = warn

    @classmethod
    def open(cls, report_to: Iterable[str], run: TrackedRun, warn: Callable[[str], None] = print) -> Tracker:
        """Open a run named `run.name` in each of `report_to` (none: a Tracker that does nothing)."""
        require(report_to)
        sinks = []
        try:
            for name in active(report_to):
                try:
                    sinks.append(OPENERS[name](run))
                except Exception as exc:  # its settings, login or server: before training, so the user's to fix
                    raise ConfigError([f"report_to: {name} could not start a run: {type(exc).__name__}: {exc}"],
                                      hint=f"fix {name}'s own settings (its environment variables, login or "
                                           "server), or leave it out of --report-to / report_to") from exc
        except BaseException:
            for sink in sinks:
                sink.close(failed=True)
            raise
        return cls(sinks, warn)

    def log(self, row: dict[str, Any], step: int) -> None:
        """Send `row`'s finite numbers (less `step` and `time`) at `step` to every tracker."""
        values = {key: value for key, value in row.items()
                  if key not in NOT_SENT and isinstance(value, int | float) and not isinstance(value, bool)
                  and math.isfinite(value)}
        if not values or not self.sinks:
            return
        for sink in list(self.sinks):
            try:
                sink.log(values, int(step))
            except Exception as exc:  # a tracker's outage must not end a training run
                self.sinks.remove(sink)
                self.warn(f"report_to: {sink.name} failed ({type(exc).__name__}: {exc}) and is dropped for this run; "
                          "metrics.jsonl keeps every row")

    def close(self, failed: bool = False) -> None:
        """Finish every tracker's run (marked failed where the tracker has the notion) and flush its files."""
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.close(failed=failed)
            except Exception as exc:  # nor a tracker's outage at the end: the artifact is still published
                self.warn(f"report_to: {sink.name} could not finish its run ({type(exc).__name__}: {exc})")

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close(failed=exc_type is not None)
        return False


@contextlib.contextmanager
def stdout_to_stderr():
    """Trackers announce themselves on stdout, which llmpost keeps for the outcome (scripts read it)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


class TensorBoard:
    name = "tensorboard"

    def __init__(self, run: TrackedRun):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.dir / TENSORBOARD_DIR))
        config = json.dumps(run.config, indent=2, default=str)
        self.writer.add_text("config", "\n".join("    " + line for line in config.splitlines()))  # markdown code

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self, failed: bool = False) -> None:
        self.writer.close()


class Trackio:
    name = "trackio"

    def __init__(self, run: TrackedRun):
        import trackio

        with stdout_to_stderr():
            self.run = trackio.init(project=PROJECT, name=run.name, config=run.config)

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self, failed: bool = False) -> None:
        import trackio

        # trackio.finish(), not the run's own: it also forgets the run, which trackio would finish again at exit.
        with stdout_to_stderr():
            trackio.finish()


class Wandb:
    name = "wandb"

    def __init__(self, run: TrackedRun):
        import wandb

        with stdout_to_stderr():  # the mode (online, offline, disabled) is wandb's own setting: WANDB_MODE
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or PROJECT, name=run.name,
                                  config=run.config)

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self, failed: bool = False) -> None:
        with stdout_to_stderr():
            self.run.finish(exit_code=1 if failed else 0)


class Mlflow:
    """Through MlflowClient, which names its run, instead of the fluent API's process-wide active run."""

    name = "mlflow"
    BATCH = 100  # params per log_batch call, mlflow's limit

    def __init__(self, run: TrackedRun):
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.client = MlflowClient()
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or PROJECT
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(experiment_name)
        tags = {key: str(run.config[key]) for key in ("artifact_id", "artifact_ref", "stage") if key in run.config}
        self.run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
        params = [Param(key, str(value)[:500]) for key, value in flatten(run.config).items()]
        for start in range(0, len(params), self.BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + self.BATCH])

    def log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step) for key, value in values.items()])

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"lora": {"r": 16}}` as `{"lora.r": 16}`: mlflow's params are flat."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


OPENERS: dict[str, Callable[[TrackedRun], Any]] = {
    "tensorboard": TensorBoard, "trackio": Trackio, "wandb": Wandb, "mlflow": Mlflow,
}
