"""`--report-to`: real runs report metrics.jsonl's rows, same names and steps, to TensorBoard and Trackio.

Each run is a few steps of the tiny model (or a judge over given responses, asking a
stdlib HTTP server that prefers the answer starting with "good"); what each tracker
wrote is read back with its own reader and compared row by row with metrics.jsonl.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store
from llmpost.reporting.metrics import read_metrics

SHORT = ("--set", "max_steps=3", "--set", "logging_steps=1", "--set", "eval.enabled=false")
NOT_SENT = ("step", "time")  # metrics.jsonl's bookkeeping; every other key goes to the trackers

TOY_REWARD = '''\
def has_seven(prompts, completions, **columns):
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [1.0 if "7" in t else 0.0 for t in texts]
'''


def float32(value: float) -> float:
    """`value` as TensorBoard keeps a scalar (a 32-bit float)."""
    return struct.unpack("f", struct.pack("f", value))[0]


def expected_scalars(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as {name: [(step, value), ...]} in the order written."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in NOT_SENT:
                scalars.setdefault(key, []).append((row["step"], value))
    return scalars


def tensorboard_run(artifact) -> tuple[dict[str, list[tuple[int, float]]], dict]:
    """The scalars and the run config the artifact's TensorBoard event files hold."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(artifact.path / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    (text,) = events.Tensors("config/text_summary")
    config = json.loads(textwrap.dedent(text.tensor_proto.string_val[0].decode()))
    return scalars, config


def assert_tensorboard_matches_metrics(store: Path, ref: str) -> None:
    artifact = Store(store).resolve(ref)
    rows = read_metrics(artifact.path / "metrics.jsonl")
    assert rows, "the stage wrote metrics.jsonl"
    scalars, config = tensorboard_run(artifact)
    expected = expected_scalars(rows)
    assert set(scalars) == set(expected)
    for name, points in expected.items():
        assert scalars[name] == [(step, float32(value)) for step, value in points], name
    assert config["artifact_id"] == artifact.id and config["artifact_ref"] == artifact.ref
    assert config["stage"] == artifact.manifest["stage"] and config["report_to"] == ["tensorboard"]
    assert not list((store / ".tmp").glob("*/tensorboard")), "no event files left behind in the store's .tmp"


def test_sft_reports_to_tensorboard_the_rows_of_metrics_jsonl(store):
    ok(run_cli("sft", "--model", "tiny", "--report-to", "tensorboard", "--out", "tb", *SHORT, store=store))
    assert_tensorboard_matches_metrics(store, "tb")


def test_ppo_reports_to_tensorboard_the_rows_of_metrics_jsonl(store, tmp_path):
    """llmpost's own PPO loop reports through the same path as the TRL trainers."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"say {i}"}) + "\n" for i in range(16)))
    reward = tmp_path / "toy_reward.py"
    reward.write_text(TOY_REWARD)
    ok(run_cli("ppo", "--policy", "tiny", "--prompts", prompts, "--reward", f"{reward}:has_seven", "--out", "ppo-tb",
               "--batch-size", "8", "--max-new-tokens", "8", "--report-to", "tensorboard", *SHORT, store=store))
    assert [row["step"] for row in read_metrics(Store(store).resolve("ppo-tb").path / "metrics.jsonl")] == [1, 2, 3]
    assert_tensorboard_matches_metrics(store, "ppo-tb")


class PreferGood(BaseHTTPRequestHandler):
    """An OpenAI-compatible judge that picks the answer starting with "good", in either order."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][-1]["content"]
        first = re.search(r"Answer A: (.*)", question).group(1)
        verdict = "A" if first.startswith("good") else "B"
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": verdict}}],
                            "usage": {"prompt_tokens": 20, "completion_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), PreferGood)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture
def pairs(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"What is {i}+1?", "chosen": f"good {i + 1}",
                                        "rejected": f"bad {i}"}) + "\n" for i in range(8)))
    return path


def test_judge_reports_to_tensorboard_its_metrics_row(store, judge_url, pairs):
    ok(run_cli("judge", "--prompts", pairs, "--judge", judge_url, "--judge-model", "stub", "--out", "prefs-tb",
               "--report-to", "tensorboard", store=store))
    artifact = Store(store).resolve("prefs-tb")
    (row,) = read_metrics(artifact.path / "metrics.jsonl")
    assert row["step"] == 16 and row["position_consistency"] == 1.0 and row["pairs_judged"] == 8
    assert_tensorboard_matches_metrics(store, "prefs-tb")


READ_TRACKIO = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
project, run = sys.argv[1:]
print(json.dumps({"runs": SQLiteStorage.get_runs(project), "logs": SQLiteStorage.get_logs(project, run),
                  "config": SQLiteStorage.get_run_config(project, run)}, default=str))
"""


@pytest.mark.skipif(importlib.util.find_spec("trackio") is None, reason="trackio is not installed")
def test_sft_reports_to_a_local_trackio_project(store, tmp_path):
    env = {"TRACKIO_DIR": str(tmp_path / "trackio")}
    proc = ok(run_cli("sft", "--model", "tiny", "--report-to", "trackio", "--out", "tracked", "--set", "max_steps=2",
                      *SHORT[2:], store=store, env=env))
    assert "Trackio" not in proc.stdout and "Trackio" in proc.stderr, "stdout keeps to the outcome"
    artifact = Store(store).resolve("tracked")
    read = subprocess.run([sys.executable, "-c", READ_TRACKIO, "llmpost", "tracked/v1"], capture_output=True,
                          text=True, env={**os.environ, **env}, check=True)
    tracked = json.loads(read.stdout)
    assert tracked["runs"] == ["tracked/v1"]
    assert tracked["config"]["artifact_id"] == artifact.id and tracked["config"]["stage"] == "sft"
    rows = read_metrics(artifact.path / "metrics.jsonl")
    logs = [{k: v for k, v in log.items() if k != "timestamp"} for log in tracked["logs"]]
    assert logs == [{k: v for k, v in row.items() if k != "time"} for row in rows]
    assert not (artifact.path / "tensorboard").exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_a_tracker_that_is_not_installed_fails_before_anything_loads(store):
    proc = run_cli("sft", "--model", "tiny", "--report-to", "wandb", *SHORT, store=store)
    assert proc.returncode == 2, proc.stderr
    assert "pip install wandb" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert not (store / ".tmp").exists(), "failed before a version was begun"


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed")
def test_a_recipe_checks_its_trackers_before_its_first_stage(store, tmp_path):
    """`defaults: {report_to: ...}` reaches every stage; a missing package stops the run before any of them."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: tracked\ndefaults: {report_to: [tensorboard], max_steps: 2}\n"
                      "stages:\n  sft: {uses: sft}\n  again: {uses: sft, model: '{{ sft }}', report_to: [mlflow]}\n")
    proc = run_cli("run", recipe, store=store)
    assert proc.returncode == 2, proc.stderr
    assert "pip install mlflow" in " ".join(proc.stderr.split())
    assert not (store / "tracked-sft").exists() and not (store / ".tmp").exists(), "no stage ran"


def test_an_unknown_tracker_is_refused_naming_the_valid_ones(store):
    proc = run_cli("dpo", "--report-to", "tensorbord", store=store)
    assert proc.returncode == 2
    stderr = " ".join(proc.stderr.split())
    assert "report_to" in stderr and "'tensorboard', 'trackio', 'wandb' or 'mlflow'" in stderr
    both = run_cli("judge", "--report-to", "none", "--report-to", "tensorboard", "--print-config", store=store)
    assert both.returncode == 2 and "`none` turns tracking off" in " ".join(both.stderr.split())


def test_report_to_none_alone_is_off(store):
    proc = ok(run_cli("grpo", "--report-to", "none", "--print-config", store=store))
    assert "report_to:\n- none\n" in proc.stdout
    default = ok(run_cli("grpo", "--print-config", store=store))
    assert "report_to: []\n" in default.stdout
