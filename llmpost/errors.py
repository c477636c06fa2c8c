"""The few exceptions llmpost raises on purpose.

A `LlmpostError` is something the user can fix: the CLI prints its message and
hint on one line each, without a traceback, and exits with its `exit_code`.
Anything else is a bug or a failed job and exits 1.
"""

from __future__ import annotations


class LlmpostError(Exception):
    """A problem the user can fix. `hint` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(LlmpostError):
    """Bad configuration: unknown keys, wrong types, malformed YAML. Lists every problem."""

    def __init__(self, problems: list[str], hint: str | None = None, source: str = "config"):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        n = len(problems)
        super().__init__(f"invalid {source} ({n} problem{'s' if n != 1 else ''}):\n{lines}", hint)


class DataError(LlmpostError):
    """A dataset that cannot be read or whose rows fit no accepted format."""


class ArtifactError(LlmpostError):
    """A missing or unreadable artifact, or a ref that resolves to nothing."""


class ModelError(LlmpostError):
    """A model reference that cannot be loaded."""


class StageFailed(LlmpostError):
    """The job ran but did not meet its bar (e.g. a quality gate). Exit 1."""

    exit_code = 1
