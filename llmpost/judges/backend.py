"""The judge a stage or a reward talks to: a backend behind the judgment cache, with token accounting.

A backend (local.py, http.py) is a `reply.Backend`: a `name`, an `identity()` for
cache keys and `complete(conversations) -> [Reply]`. `Judge.ask()` serves what it can from the
cache, sends the rest to the backend, and counts requests, cache hits, failures
and tokens for the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmpost.judges.cache import CachedReply, JudgmentCache, judgment_key
from llmpost.judges.reply import Backend, Reply
from llmpost.judges.settings import JudgeSettings

CHUNK = 256  # requests per round trip to the backend, so progress moves and the cache fills as we go


@dataclass
class Usage:
    """What a judge cost: requests sent, cache hits, failures and tokens (cache hits cost none)."""

    backend: str
    requests: int = 0
    cache_hits: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 2)
        out["total_tokens"] = self.prompt_tokens + self.completion_tokens
        return out


@dataclass
class Judge:
    backend: Backend
    cache: JudgmentCache
    usage: Usage = field(init=False)

    def __post_init__(self) -> None:
        self.usage = Usage(self.backend.name)

    def ask(self, conversations: list[list[dict]], progress: Callable[[int], None] | None = None) -> list[Reply]:
        """Replies to `conversations`, in order; `progress(n)` is called as n more are done."""
        identity = self.backend.identity()
        keys = [judgment_key(identity, c) for c in conversations]
        replies: list[Reply | None] = [None] * len(conversations)
        for start in range(0, len(conversations), CHUNK):
            span = range(start, min(start + CHUNK, len(conversations)))
            self._ask_chunk([keys[i] for i in span], [conversations[i] for i in span], replies, start)
            if progress:
                progress(len(span))
        return replies  # type: ignore[return-value]

    def _ask_chunk(self, keys: list[str], conversations: list[list[dict]], replies: list, offset: int) -> None:
        hits = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in hits]
        for i, key in enumerate(keys):
            if key in hits:
                hit = hits[key]
                replies[offset + i] = Reply(hit.text, hit.prompt_tokens, hit.completion_tokens, cached=True)
        self.usage.cache_hits += len(keys) - len(todo)
        if not todo:
            return
        started = time.time()
        fresh = self.backend.complete([conversations[i] for i in todo])
        self.usage.seconds += time.time() - started
        self.usage.requests += len(todo)
        remember = {}
        for i, reply in zip(todo, fresh, strict=True):
            replies[offset + i] = reply
            self.usage.prompt_tokens += reply.prompt_tokens
            self.usage.completion_tokens += reply.completion_tokens
            if reply.text is None:
                self.usage.failures += 1
            else:
                remember[keys[i]] = CachedReply(reply.text, reply.prompt_tokens, reply.completion_tokens)
        self.cache.put_many(remember)

    def close(self) -> None:
        self.cache.close()


def open_judge(settings: JudgeSettings, *, model_source=None, cache_root: Path | None = None) -> Judge:
    """The judge `settings` describe, behind the cache under `cache_root` (a store root; None = no cache).

    A local judge needs `model_source` (the resolved ModelSource of `settings.model`),
    so the caller decides how it is resolved and recorded in lineage.
    """
    if settings.backend == "http":
        from llmpost.judges.http import HttpBackend

        backend: Backend = HttpBackend(settings)
    else:
        from llmpost.judges.local import LocalBackend

        backend = LocalBackend(model_source, settings)
    cache = JudgmentCache.in_store(cache_root, settings.cache) if cache_root is not None else JudgmentCache(None)
    return Judge(backend, cache)
