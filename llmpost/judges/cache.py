"""The on-disk judgment cache: the same question to the same judge is answered once.

A judgment is keyed by sha256 of the backend's identity (which model, which
generation settings; never an API key) and the exact request messages. Only
replies are cached, failed requests are not, so a re-run retries what failed.
Stored in SQLite (WAL mode), so concurrent runs sharing a store are safe. The
default location is `<store>/.cache/judgments.sqlite`, outside every artifact.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

CACHE_FILE = "judgments.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class CachedReply:
    text: str
    prompt_tokens: int
    completion_tokens: int


def judgment_key(identity: dict, messages: list[dict]) -> str:
    """The cache key of one request to one judge."""
    blob = json.dumps({"judge": identity, "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgmentCache:
    """get_many/put_many over a SQLite file; `JudgmentCache(None)` is a cache that remembers nothing."""

    def __init__(self, path: Path | None):
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)
            self._db.commit()

    @classmethod
    def in_store(cls, store_root: Path, enabled: bool = True) -> JudgmentCache:
        """The cache shared by every run on the store at `store_root` (or none when disabled)."""
        return cls(Path(store_root) / ".cache" / CACHE_FILE if enabled else None)

    def get_many(self, keys: list[str]) -> dict[str, CachedReply]:
        """The cached replies among `keys`."""
        if self._db is None or not keys:
            return {}
        found: dict[str, CachedReply] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite limits the number of bound parameters
            chunk = unique[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, text, prompt_tokens, completion_tokens FROM judgments WHERE key IN ({marks})", chunk)
            for key, text, pt, ct in rows:
                found[key] = CachedReply(text, pt, ct)
        return found

    def put_many(self, items: dict[str, CachedReply]) -> None:
        """Remember replies (an existing key keeps its first reply)."""
        if self._db is None or not items:
            return
        self._db.executemany(
            "INSERT OR IGNORE INTO judgments VALUES (?, ?, ?, ?)",
            [(k, r.text, r.prompt_tokens, r.completion_tokens) for k, r in items.items()],
        )
        self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
