"""An OpenAI-compatible judge that knows the built-in task's answers, for smoke-size recipe runs.

A tiny judge model needs hundreds of training steps before its verdicts mean anything; a
smoke test cannot afford them. This server answers the built-in pairwise judge prompt
("Question: ...\\nAnswer A: ...\\nAnswer B: ...") with the letter of the answer whose final
number is right, the way a perfect judge would, over real HTTP on 127.0.0.1. `llmpost judge`
talks to it through its ordinary HTTP backend (`judge.base_url`).
"""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from llmpost.data.builtin import problems
from llmpost.evaluation.answers import is_correct

PROMPT = re.compile(r"Question: (?P<question>.*?)\nAnswer A: (?P<a>.*?)\nAnswer B: (?P<b>.*?)\nWhich answer", re.S)


def truths() -> dict[str, str]:
    return {p["question"]: str(p["result"]) for split in ("train", "test") for p in problems(split)}


def verdict(prompt: str, known: dict[str, str]) -> str:
    """"A" or "B" for the one correct answer; "A" otherwise (so an undecidable pair is inconsistent)."""
    match = PROMPT.search(prompt)
    if not match or match["question"] not in known:
        return "A"
    reference = known[match["question"]]
    a_right, b_right = is_correct(match["a"], reference), is_correct(match["b"], reference)
    return "B" if b_right and not a_right else "A"


@contextmanager
def oracle_judge():
    """Serve the oracle on a free port; yields its base URL (…/v1)."""
    known = truths()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.reply({"object": "list", "data": [{"id": "oracle", "object": "model"}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = verdict(body["messages"][-1]["content"], known)
            self.reply({"object": "chat.completion", "model": "oracle",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 0, "completion_tokens": 1}})

        def reply(self, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
