"""`judge:` rewards for GRPO/PPO: round robins within a prompt's group, a reference, or a 1-10 score.

The judge here is a rule-following grader behind a real HTTP server on 127.0.0.1
(it prefers the answer ending in "#### 7"), so every expected reward is exact;
the same reward with the real tiny judge runs in tests/integration/test_judge_reward.py.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmpost.artifacts.store import Store
from llmpost.rewards.judge_reward import make_judge_reward

RIGHT, WRONG, WRONG2 = "3+4=7\n#### 7", "3+4=8\n#### 8", "3+4=9\n#### 9"
PROMPT = [{"role": "user", "content": "Ann has 3 pens and gets 4 more. How many pens does Ann have?"}]
OTHER = [{"role": "user", "content": "Ben has 9 cups and gives away 2. How many cups are left?"}]


def grade(content: str) -> str:
    """Pairwise: the letter of the answer ending in "#### 7" (else "B"); pointwise: 9 or 2."""
    pair = re.search(r"Answer A: (.*)\nAnswer B: (.*)\nWhich answer", content, re.S)
    if pair:
        return "A" if pair.group(1).endswith("#### 7") else "B"
    return "Rating: 9" if content.split("Answer: ", 1)[1].split("\n")[1].startswith("#### 7") else "2"


@pytest.fixture(scope="module")
def grader():
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = grade(body["messages"][-1]["content"])
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}],
                                  "usage": {"prompt_tokens": 50, "completion_tokens": 1}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def reward_for(url: str, tmp_path, extra: str = ""):
    return make_judge_reward(f"judge:{url}?model=grader&concurrency=2{extra}", Store(tmp_path / "store"))


def test_group_members_score_their_win_rate(grader, tmp_path):
    reward = reward_for(grader, tmp_path)
    prompts = [PROMPT] * 3 + [OTHER] * 2
    completions = [WRONG, RIGHT, WRONG2, "9-2=7\n#### 7", "9-2=6\n#### 6"]
    scores = reward(prompts, completions, [{}] * 5)
    # RIGHT beats both; the two wrong answers tie with each other (the grader says "B" both ways).
    assert scores == [0.25, 1.0, 0.25, 1.0, 0.0]
    assert reward.__name__ == "judge" and reward.stats["pairs"] == 4 and reward.stats["ties"] == 1


def test_identical_completions_tie_without_asking(grader, tmp_path):
    reward = reward_for(grader, tmp_path, "&cache=false")
    assert reward([PROMPT] * 2, [RIGHT, RIGHT + "  "], [{}, {}]) == [0.5, 0.5]
    assert reward.usage()["requests"] == 0


def test_a_lone_completion_is_compared_with_the_reference(grader, tmp_path):
    reward = reward_for(grader, tmp_path)
    rows = [{"chosen": WRONG}, {"chosen": RIGHT}, {"reference_response": WRONG2}]
    assert reward([PROMPT, OTHER, [{"role": "user", "content": "x"}]], [RIGHT, WRONG, WRONG],
                  rows) == [1.0, 0.0, 0.5]


def test_a_lone_completion_without_reference_is_scored_pointwise(grader, tmp_path):
    reward = reward_for(grader, tmp_path)
    scores = reward([PROMPT, OTHER], [RIGHT, WRONG], [{"answer": "7"}, {}])
    assert scores == pytest.approx([8 / 9, 1 / 9])


def test_the_cache_makes_a_repeated_batch_free(grader, tmp_path):
    reward = reward_for(grader, tmp_path)
    batch = ([PROMPT] * 3, [WRONG, RIGHT, WRONG2], [{}] * 3)
    first = reward(*batch)
    asked = reward.usage()["requests"]
    assert reward(*batch) == first and reward.usage()["requests"] == asked == 6
    assert reward.usage()["cache_hits"] == 6


def test_model_refs_name_a_local_judge_for_lineage(tmp_path):
    assert make_judge_reward("judge:judge-model", Store(tmp_path)).model_refs == ["judge-model"]
    assert make_judge_reward("judge:http://127.0.0.1:1/v1?model=m", Store(tmp_path)).model_refs == []
