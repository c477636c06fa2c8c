"""What every judge backend is and returns: the `Backend` protocol and its `Reply`.

Its own module so that the backends (local.py, http.py) and the `Judge` that opens
them (backend.py) all import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class Reply:
    """A judge's reply to one request; `text` is None when the request failed after every retry."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    cached: bool = False


class Backend(Protocol):
    name: str

    def identity(self) -> dict:
        """What makes two replies interchangeable: the model and generation settings, never secrets."""

    def complete(self, conversations: list[list[dict]]) -> list[Reply]:
        """One reply per conversation, in order."""
