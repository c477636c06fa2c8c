"""The on-disk judgment cache and the Judge wrapper that counts requests, cache hits and tokens."""

from __future__ import annotations

import sqlite3

from llmpost.judges.backend import Judge
from llmpost.judges.cache import CachedReply, JudgmentCache, judgment_key
from llmpost.judges.reply import Reply


class CountingBackend:
    """A backend answering "A" (or failing for prompts containing "fail"), counting what it was asked."""

    name = "counting"

    def __init__(self, model: str = "m1"):
        self.model = model
        self.asked: list[list[dict]] = []

    def identity(self) -> dict:
        return {"backend": "counting", "model": self.model}

    def complete(self, conversations):
        self.asked += conversations
        return [Reply(None, error="boom") if "fail" in c[-1]["content"] else Reply("A", 10, 1)
                for c in conversations]


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_cache_persists_across_instances(tmp_path):
    key = judgment_key({"model": "m"}, ask("q"))
    first = JudgmentCache.in_store(tmp_path)
    first.put_many({key: CachedReply("B", 12, 1)})
    first.close()
    again = JudgmentCache.in_store(tmp_path)
    assert again.get_many([key, "missing"]) == {key: CachedReply("B", 12, 1)}
    assert (tmp_path / ".cache" / "judgments.sqlite").is_file()


def test_key_depends_on_judge_and_messages():
    base = judgment_key({"model": "m"}, ask("q"))
    assert base == judgment_key({"model": "m"}, ask("q"))
    assert base != judgment_key({"model": "other"}, ask("q"))
    assert base != judgment_key({"model": "m"}, ask("q2"))


def test_second_run_costs_nothing_and_failures_are_retried(tmp_path):
    questions = [ask(f"question {i}") for i in range(300)] + [ask("please fail")]
    backend = CountingBackend()
    judge = Judge(backend, JudgmentCache.in_store(tmp_path))
    replies = judge.ask(questions)
    assert [r.text for r in replies[:-1]] == ["A"] * 300 and replies[-1].text is None
    assert (judge.usage.requests, judge.usage.cache_hits, judge.usage.failures) == (301, 0, 1)
    assert judge.usage.prompt_tokens == 3000
    judge.close()

    backend2 = CountingBackend()
    rerun = Judge(backend2, JudgmentCache.in_store(tmp_path))
    replies = rerun.ask(questions)
    assert backend2.asked == [ask("please fail")]  # only the failure goes out again
    assert all(r.cached for r in replies[:-1])
    assert (rerun.usage.requests, rerun.usage.cache_hits, rerun.usage.prompt_tokens) == (1, 300, 0)

    other_model = Judge(CountingBackend("m2"), JudgmentCache.in_store(tmp_path))
    other_model.ask(questions[:5])
    assert other_model.usage.cache_hits == 0


def test_disabled_cache_writes_nothing(tmp_path):
    judge = Judge(CountingBackend(), JudgmentCache.in_store(tmp_path, enabled=False))
    judge.ask([ask("q")])
    judge.ask([ask("q")])
    assert judge.usage.requests == 2 and judge.usage.cache_hits == 0
    assert not (tmp_path / ".cache").exists()


def test_cache_holds_only_keys_and_replies(tmp_path):
    judge = Judge(CountingBackend(), JudgmentCache.in_store(tmp_path))
    judge.ask([ask("q")])
    judge.close()
    db = sqlite3.connect(tmp_path / ".cache" / "judgments.sqlite")
    columns = [row[1] for row in db.execute("PRAGMA table_info(judgments)")]
    assert columns == ["key", "text", "prompt_tokens", "completion_tokens"]
