"""The HTTP judge backend's retry, timeout and error handling, against a scripted server on 127.0.0.1.

The scripted server answers each request with the next scripted reply (status,
body, delay, headers), so each failure mode is exact. The end-to-end tests with a
real model behind a real server are in tests/integration/test_judge_http.py.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmpost.errors import ConfigError, ModelError
from llmpost.judges.http import HttpBackend
from llmpost.judges.settings import JudgeSettings


def chat(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}],
                       "usage": {"prompt_tokens": 30, "completion_tokens": 1}}).encode()


class Scripted:
    """A server replying with `script` in order, then with "A"; records every request.

    `peak_in_flight` is the most requests it was answering at the same moment.
    """

    def __init__(self, script: list[tuple]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.times: list[float] = []
        self.in_flight = self.peak_in_flight = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                       "body": json.loads(body) if body else None})
                outer.times.append(time.time())
                status, payload, delay, headers = (outer.script.pop(0) if outer.script else (200, chat("A"), 0, {}))
                with lock:
                    outer.in_flight += 1
                    outer.peak_in_flight = max(outer.peak_in_flight, outer.in_flight)
                time.sleep(delay)
                with lock:
                    outer.in_flight -= 1
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = reply

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def start(*script):
        server = Scripted(script)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


def backend(url: str, **settings) -> HttpBackend:
    defaults = {"base_url": url, "model": "judge", "backoff_s": 0.01, "timeout_s": 2, "concurrency": 1}
    return HttpBackend(JudgeSettings(**{**defaults, **settings}))


MESSAGES = [{"role": "user", "content": "Which answer is correct? Reply A or B."}]


def test_sends_a_standard_chat_completion_and_reads_usage(scripted):
    server = scripted((200, chat("B"), 0, {}))
    (reply,) = backend(server.url, max_new_tokens=5).complete([MESSAGES])
    assert (reply.text, reply.prompt_tokens, reply.completion_tokens, reply.error) == ("B", 30, 1, None)
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"] == {"model": "judge", "messages": MESSAGES, "max_tokens": 5, "temperature": 0.0}
    assert request["auth"] is None


def test_server_errors_are_retried_with_growing_backoff(scripted):
    error = (500, b'{"error": "overloaded"}', 0, {})
    server = scripted(error, error, (503, b"busy", 0, {}))
    (reply,) = backend(server.url, max_retries=3, backoff_s=0.1).complete([MESSAGES])
    assert reply.text == "A" and len(server.requests) == 4
    gaps = [b - a for a, b in zip(server.times, server.times[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4


def test_retry_after_is_honoured(scripted):
    server = scripted((429, b"slow down", 0, {"Retry-After": "0.5"}))
    (reply,) = backend(server.url, backoff_s=0).complete([MESSAGES])
    assert reply.text == "A" and server.times[1] - server.times[0] >= 0.5


def test_a_reply_that_fails_every_attempt_is_a_failure_not_an_exception(scripted):
    server = scripted(*[(500, b"down", 0, {})] * 3)
    (reply,) = backend(server.url, max_retries=2).complete([MESSAGES])
    assert reply.text is None
    assert "HTTP 500" in reply.error and "after 3 attempts" in reply.error
    assert len(server.requests) == 3


def test_timeouts_are_retried(scripted):
    server = scripted((200, chat("B"), 1.5, {}))
    started = time.time()
    (reply,) = backend(server.url, timeout_s=0.3, max_retries=1).complete([MESSAGES])
    assert reply.text == "A" and len(server.requests) == 2 and time.time() - started < 1.5
    server2 = scripted(*[(200, chat("B"), 1.0, {})] * 2)
    (failed,) = backend(server2.url, timeout_s=0.2, max_retries=1).complete([MESSAGES])
    assert failed.text is None and "within 0.2s" in failed.error


@pytest.mark.parametrize("payload, why", [
    (b'{"choices": [{"message": {"content": "A"', "not JSON"),
    (b'{"id": "x", "object": "chat.completion"}', "no choices"),
    (b'[1, 2]', "expected a JSON object"),
])
def test_malformed_replies_are_retried_then_reported(scripted, payload, why):
    server = scripted((200, payload, 0, {}))
    (reply,) = backend(server.url, max_retries=1).complete([MESSAGES])
    assert reply.text == "A" and len(server.requests) == 2
    server2 = scripted(*[(200, payload, 0, {})] * 2)
    (failed,) = backend(server2.url, max_retries=1).complete([MESSAGES])
    assert failed.text is None and "malformed reply" in failed.error and why in failed.error


def test_api_key_comes_from_the_named_variable_and_is_never_in_errors(scripted, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("LLMPOST_TEST_JUDGE_KEY", secret)
    server = scripted((401, json.dumps({"error": f"bad key {secret}"}).encode(), 0, {}))
    judge = backend(server.url, api_key_env="LLMPOST_TEST_JUDGE_KEY")
    assert secret not in json.dumps(judge.identity()) and secret not in judge.name
    with pytest.raises(ModelError) as err:
        judge.complete([MESSAGES])
    assert server.requests[0]["auth"] == f"Bearer {secret}"
    assert "HTTP 401" in str(err.value) and "$LLMPOST_TEST_JUDGE_KEY" in str(err.value)
    assert secret not in str(err.value)


def test_a_named_but_unset_key_variable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("LLMPOST_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError) as err:
        backend("http://127.0.0.1:9/v1", api_key_env="LLMPOST_TEST_NO_SUCH_KEY")
    assert "LLMPOST_TEST_NO_SUCH_KEY" in str(err.value)


def test_wrong_model_or_url_stops_at_once(scripted):
    server = scripted((404, b'{"error": "model not found"}', 0, {}))
    with pytest.raises(ModelError) as err:
        backend(server.url).complete([MESSAGES])
    assert "HTTP 404" in str(err.value) and len(server.requests) == 1


def test_model_defaults_to_the_servers_only_model(scripted):
    listing = json.dumps({"data": [{"id": "served-judge"}]}).encode()
    server = scripted((200, listing, 0, {}))
    judge = backend(server.url, model=None)
    assert judge.model == "served-judge" and server.requests[0]["path"] == "/v1/models"
    two = scripted((200, json.dumps({"data": [{"id": "x"}, {"id": "y"}]}).encode(), 0, {}))
    with pytest.raises(ConfigError) as err:
        backend(two.url, model=None)
    assert "x, y" in str(err.value) and "--judge-model" in str(err.value).replace("judge.model", "")


def test_unreachable_server_fails_each_request_after_retries():
    (reply,) = backend("http://127.0.0.1:9/v1", max_retries=1).complete([MESSAGES])
    assert reply.text is None and "cannot reach" in reply.error


def test_concurrency_limit(scripted):
    server = scripted(*[(200, chat("A"), 0.3, {})] * 12)  # each reply takes long enough for others to pile up
    replies = backend(server.url, concurrency=4).complete([MESSAGES] * 12)
    assert [r.text for r in replies] == ["A"] * 12
    assert server.peak_in_flight == 4  # never more than the limit, and the limit is used
