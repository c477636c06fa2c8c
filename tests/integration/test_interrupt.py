"""Killing a run mid-training leaves no visible version and never moves `latest`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from llmpost.artifacts.store import Store


def start_long_sft(store, name: str) -> subprocess.Popen:
    env = {**os.environ, "LLMPOST_STORE": str(store)}
    return subprocess.Popen(
        [sys.executable, "-m", "llmpost", "sft", "--out", name, "--set", "max_steps=5000", "--set", "logging_steps=1",
         "--set", "eval.enabled=false"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell starting background jobs ignores SIGINT in them; a user's Ctrl-C reaches a foreground one
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_training(store, timeout: float = 180) -> None:
    """Until some in-flight artifact has logged a training step."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(p.stat().st_size > 0 for p in (store / ".tmp").glob("*/metrics.jsonl")):
            return
        time.sleep(0.5)
    raise AssertionError("training never started")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_interrupt_leaves_no_version_and_latest_unmoved(sft_store, sig, code):
    store = Store(sft_store)
    before = [a.ref for a in store.list("sft")]
    latest_before = store.resolve("sft").ref

    proc = start_long_sft(sft_store, "sft")
    wait_for_training(sft_store)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == code, err[-2000:]
    if sig != signal.SIGKILL:
        assert "interrupted" in err and "Traceback" not in err
    assert [a.ref for a in store.list("sft")] == before
    assert store.resolve("sft").ref == latest_before
