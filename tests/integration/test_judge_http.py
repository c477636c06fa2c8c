"""`llmpost judge` against a real OpenAI-compatible server on 127.0.0.1 serving the real tiny judge.

The server (tests/integration/openai_server.py) runs in a subprocess and needs an
API key; faults (500, timeout, malformed JSON, unparsable text) are switched on
through its /control route. Every run writes into one store, which the last test
searches, byte by byte, for the API key.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ok, run_cli
from integration.judge_setup import JUDGE, garbled_pairs, with_tiny_judge

from llmpost.artifacts.store import Store

KEY_ENV = "LLMPOST_TEST_JUDGE_KEY"
KEY = "sk-llmpost-test-" + secrets.token_hex(16)
SERVER = Path(__file__).with_name("openai_server.py")
PAIRS = ["--max-prompts", "6", "--output", "pairs", "--set", "test_fraction=0"]


@dataclass
class Server:
    url: str   # the OpenAI-compatible base URL
    data: str  # garbled/well-formed answer pairs the tiny judge has real preferences on
    root: str

    def control(self, fault=None, when="first", delay=3.0) -> None:
        body = json.dumps({"fault": fault, "when": when, "delay": delay}).encode()
        request = urllib.request.Request(f"{self.root}/control", data=body, method="POST")
        urllib.request.urlopen(request, timeout=10).read()

    def stats(self) -> dict:
        return json.loads(urllib.request.urlopen(f"{self.root}/stats", timeout=10).read())


@pytest.fixture(scope="module")
def server(sft_store):
    """The tiny judge behind HTTP, requiring the API key in $LLMPOST_TEST_JUDGE_KEY."""
    model_dir = Store(with_tiny_judge(sft_store)).resolve(JUDGE).model_dir
    proc = subprocess.Popen([sys.executable, str(SERVER), str(model_dir), "--name", "tiny-judge",
                             "--require-key-env", KEY_ENV], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, KEY_ENV: KEY})
    line = proc.stdout.readline()
    assert line.startswith("READY"), f"server did not start: {line!r}"
    root = f"http://127.0.0.1:{line.split()[1]}"
    yield Server(f"{root}/v1", str(garbled_pairs(sft_store, 6)), root)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def http_store(tmp_path_factory):
    return tmp_path_factory.mktemp("http-judge-store")


def judge_http(server: Server, store: Path, out: str, *extra: str, key: str = KEY, cache: bool = False):
    """`llmpost judge` against the server; without the cache unless asked, so every request reaches it."""
    proc = run_cli("judge", "--prompts", server.data, *PAIRS, "--judge", server.url, "--api-key-env", KEY_ENV,
                   "--out", out, "--set", f"judge.cache={str(cache).lower()}", "--set", "judge.backoff_s=0.05",
                   *extra, store=store, env={KEY_ENV: key})
    assert key not in proc.stdout + proc.stderr
    return proc


def stderr_of(proc) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(proc.stderr.split())


def report_of(store: Path, ref: str) -> dict:
    return json.loads((Store(store).resolve(ref).path / "eval.json").read_text())


def verdicts(store: Path, ref: str) -> list:
    path = Store(store).resolve(ref).path / "judgments.jsonl"
    return [(j["group"], j["first"], j["second"], j["verdict"]) for j in map(json.loads, path.read_text().splitlines())]


def test_http_judge_gives_the_local_judges_verdicts(server, http_store, sft_store):
    server.control(None)
    ok(judge_http(server, http_store, "via-http", cache=True))
    ok(run_cli("judge", "--prompts", server.data, *PAIRS, "--judge", JUDGE, "--out", "via-local", store=sft_store))
    assert verdicts(http_store, "via-http") == verdicts(sft_store, "via-local")  # same model, greedy, both ways
    report = report_of(http_store, "via-http")
    assert server.stats()["completions"] == report["judgments"] == 12
    (usage,) = report["tokens"].values()
    assert usage["requests"] == 12 and usage["failures"] == 0 and usage["prompt_tokens"] > 12 * 50
    assert report["judge"].startswith("http:http://127.0.0.1:") and "model=tiny-judge" in report["judge"]


def test_server_errors_and_timeouts_are_retried(server, http_store):
    server.control("500", when="first")
    ok(judge_http(server, http_store, "after-500s"))
    assert server.stats()["faulted"] == 12 and server.stats()["requests"] == 24  # each request failed once, then succeeded
    assert report_of(http_store, "after-500s")["request_failures"] == 0

    server.control("timeout", when="first", delay=3)
    ok(judge_http(server, http_store, "after-timeouts", "--set", "judge.timeout_s=1"))
    assert server.stats()["faulted"] == 12
    assert verdicts(http_store, "after-timeouts") == verdicts(http_store, "after-500s") == verdicts(http_store, "via-http")


def test_malformed_replies_fail_the_job_after_retries(server, http_store):
    server.control("malformed", when="always")
    proc = judge_http(server, http_store, "malformed", "--set", "judge.max_retries=1")
    assert proc.returncode == 1
    assert "failed on 12 of 12 requests" in stderr_of(proc) and "malformed reply" in stderr_of(proc)
    assert "malformed" not in {a.name for a in Store(http_store).list()}


def test_unparsable_replies_are_counted_never_wins(server, http_store):
    server.control("gibberish", when="always")
    proc = judge_http(server, http_store, "gibberish")
    assert proc.returncode == 1
    assert '"unparsed": 6' in stderr_of(proc) and "the moon is made of cheese" in stderr_of(proc)
    assert "gibberish" not in {a.name for a in Store(http_store).list()}


def test_a_wrong_key_is_refused_with_a_hint(server, http_store):
    server.control(None)
    proc = judge_http(server, http_store, "wrong-key", key="sk-wrong-" + secrets.token_hex(8))
    assert proc.returncode == 2
    assert "HTTP 401" in stderr_of(proc) and KEY_ENV in stderr_of(proc) and "Traceback" not in proc.stderr
    assert server.stats()["unauthorized"] >= 1


def test_the_api_key_is_in_no_file_under_the_store(server, http_store):
    """Every file the runs above left (artifacts, judgment cache, work dirs) is free of the key."""
    if not Store(http_store).list():  # run alone: make something to search
        server.control(None)
        ok(judge_http(server, http_store, "key-check", cache=True))
    files = [p for p in http_store.rglob("*") if p.is_file()]
    assert any(p.name == "judgments.sqlite" for p in files) and any(p.name == "manifest.json" for p in files)
    leaks = [str(p) for p in files if KEY.encode() in p.read_bytes()]
    assert not leaks
    manifest = Store(http_store).list()[0].manifest
    assert manifest["config"]["judge"]["api_key_env"] == KEY_ENV  # the name is recorded, the value is not
