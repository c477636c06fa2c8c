"""A small OpenAI-compatible chat-completions server for tests: a real model behind real HTTP on 127.0.0.1.

    python tests/integration/openai_server.py MODEL_DIR [--name NAME] [--require-key-env VAR]

Prints `READY <port>` once it listens. Serves GET /v1/models and POST
/v1/chat/completions (greedy generation with plain transformers, the chat
template applied, token usage reported). Faults are switched on at run time,
so one server covers every failure a client must survive:

    POST /control {"fault": "500" | "timeout" | "malformed" | "gibberish" | null,
                   "when": "first" | "always" | "alternate", "delay": seconds}
        500        HTTP 500 with a JSON error body
        timeout    answer only after `delay` seconds (longer than the client waits)
        malformed  HTTP 200 whose body is not JSON
        gibberish  a well-formed completion whose text names no verdict
        first      fault only the first attempt of each distinct request (retries succeed)
        always     fault every request
        alternate  fault every other request (the 1st, 3rd, ...)
    GET /stats     {"requests", "faulted", "unauthorized", "completions"}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, model, tokenizer, name: str, key: str | None):
        self.model, self.tokenizer, self.name, self.key = model, tokenizer, name, key
        self.lock = threading.Lock()
        self.fault: str | None = None
        self.when = "first"
        self.delay = 5.0
        self.seen: set[str] = set()
        self.stats = {"requests": 0, "faulted": 0, "unauthorized": 0, "completions": 0}

    def should_fault(self, body: bytes) -> bool:
        with self.lock:
            self.stats["requests"] += 1
            if self.fault is None:
                return False
            digest = hashlib.sha256(body).hexdigest()
            first = digest not in self.seen
            self.seen.add(digest)
            alternate = self.stats["requests"] % 2 == 1
            if self.when == "always" or (self.when == "first" and first) or (self.when == "alternate" and alternate):
                self.stats["faulted"] += 1
                return True
            return False

    def complete(self, messages: list[dict], max_tokens: int) -> tuple[str, int, int]:
        import torch

        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with self.lock, torch.no_grad():
            out = self.model.generate(**ids, max_new_tokens=max_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=self.tokenizer.eos_token_id)
            self.stats["completions"] += 1
        new = out[0, ids["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True), ids["input_ids"].shape[1], len(new)


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def send_json(self, code: int, payload, raw: bytes | None = None) -> None:
            body = raw if raw is not None else json.dumps(payload).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        def read_body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def authorized(self) -> bool:
            if state.key is None or self.headers.get("Authorization") == f"Bearer {state.key}":
                return True
            with state.lock:
                state.stats["unauthorized"] += 1
            self.send_json(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
            return False

        def do_GET(self) -> None:
            if self.path == "/stats":
                with state.lock:
                    return self.send_json(200, dict(state.stats))
            if not self.authorized():
                return
            if self.path == "/v1/models":
                return self.send_json(200, {"object": "list", "data": [{"id": state.name, "object": "model"}]})
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            body = self.read_body()
            if self.path == "/control":
                settings = json.loads(body or b"{}")
                with state.lock:
                    state.fault = settings.get("fault")
                    state.when = settings.get("when", "first")
                    state.delay = float(settings.get("delay", 5.0))
                    state.seen.clear()
                    state.stats = {k: 0 for k in state.stats}
                return self.send_json(200, {"ok": True})
            if not self.authorized():
                return
            if self.path != "/v1/chat/completions":
                return self.send_json(404, {"error": {"message": f"no route {self.path}"}})
            request = json.loads(body)
            if request.get("model") != state.name:
                return self.send_json(404, {"error": {"message": f"model {request.get('model')!r} not found"}})
            if state.should_fault(body):
                return self.fault_reply(request)
            text, prompt_tokens, completion_tokens = state.complete(request["messages"], int(request.get("max_tokens") or 16))
            self.send_json(200, completion(state.name, text, prompt_tokens, completion_tokens))

        def fault_reply(self, request: dict) -> None:
            if state.fault == "500":
                return self.send_json(500, {"error": {"message": "internal server error (injected)"}})
            if state.fault == "timeout":
                time.sleep(state.delay)
                text, pt, ct = state.complete(request["messages"], int(request.get("max_tokens") or 16))
                return self.send_json(200, completion(state.name, text, pt, ct))
            if state.fault == "malformed":
                return self.send_json(200, None, raw=b'{"choices": [{"message": {"content": "A"')
            if state.fault == "gibberish":
                return self.send_json(200, completion(state.name, "the moon is made of cheese", 10, 6))
            self.send_json(500, {"error": {"message": f"unknown fault {state.fault!r}"}})

    return Handler


def completion(name: str, text: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "id": f"chatcmpl-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--name", default="tiny-judge")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--require-key-env", default=None, help="answer 401 unless the Bearer token equals $VAR")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir).eval()
    key = os.environ[args.require_key_env] if args.require_key_env else None
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(State(model, tokenizer, args.name, key)))
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.exit(0)


if __name__ == "__main__":
    main()
