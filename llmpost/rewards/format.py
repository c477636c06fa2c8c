"""The `format` reward: 1.0 when the whole completion matches a regex, else 0.0.

The default pattern is DeepSeek-R1-Zero's: reasoning inside `<think>...</think>`,
then the final answer inside `<answer>...</answer>`. Pass your own with
`format:REGEX` (matched against the stripped completion, `.` matching newlines).
"""

from __future__ import annotations

import re

from llmpost.errors import ConfigError

R1_ZERO_FORMAT = r"<think>.*?</think>\s*<answer>.*?</answer>"


def format_reward(pattern: str | None = None):
    """A reward scoring 1.0 for completions that fully match `pattern` (default: R1-Zero's think/answer tags)."""
    try:
        regex = re.compile(pattern or R1_ZERO_FORMAT, re.S)
    except re.error as exc:
        raise ConfigError([f"reward format:{pattern}: not a valid regular expression ({exc})"],
                          hint="e.g. --reward 'format:<answer>\\d+</answer>'") from None

    def matches_format(prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list[float]:
        return [1.0 if regex.fullmatch(text.strip()) else 0.0 for text in completions]

    return matches_format
