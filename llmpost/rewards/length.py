"""The `length` reward: 0 inside a band of completion lengths (in characters), negative outside.

    length                 the same as length:max=256
    length:max=200         0 up to 200 characters, then falling linearly to -1 at 400
    length:min=20,max=200  a target band: also -1 for an empty completion, rising to 0 at 20

Characters, not tokens, so the reward means the same for every tokenizer.
"""

from __future__ import annotations

from llmpost.errors import ConfigError
from llmpost.rewards.spec import parse_options

DEFAULT_MAX = 256


def length_reward(arg: str | None = None):
    """A reward that is 0 for completions between `min` and `max` characters and down to -1 outside."""
    options = parse_options(arg, {"min": int, "max": int}, "length")
    low, high = options.get("min", 0), options.get("max", DEFAULT_MAX)
    if not 0 <= low <= high or high < 1:
        raise ConfigError([f"reward length:{arg}: need 0 <= min <= max and max >= 1"],
                          hint="e.g. --reward length:min=20,max=200")

    def length_in_band(prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list[float]:
        return [band_penalty(len(text), low, high) for text in completions]

    return length_in_band


def band_penalty(n: int, low: int, high: int) -> float:
    """0 inside [low, high]; outside, minus the distance as a fraction of the bound, floored at -1."""
    if n > high:
        return -min(1.0, (n - high) / high)
    if n < low:
        return -min(1.0, (low - n) / low)
    return 0.0
