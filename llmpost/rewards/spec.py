"""What a reward function is (`RewardFn`), and reading reward specs: `NAME[=WEIGHT]` and the
`key=value,...` options some rewards take.

    exact_match            ("exact_match", 1.0)
    format=0.2             ("format", 0.2)
    rm:sft-rm=0.5          ("rm:sft-rm", 0.5)
    length:max=200         ("length:max=200", 1.0)   the text after the last `=` is no number
    length:max=200=0.1     ("length:max=200", 0.1)
    prm:my-prm:agg=last    ("prm:my-prm:agg=last", 1.0)
    prm:my-prm:agg=0.5     ("prm:my-prm:agg=0.5", 1.0)   (rejected later: agg takes a name)

When a name could end in a number (a regex), write the weight explicitly: `format:a=1=1`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from llmpost.errors import ConfigError

# (prompts as message lists, completion texts, the dataset rows) -> one reward per completion;
# None or NaN where the reward does not apply to that row (e.g. no reference answer).
RewardFn = Callable[[list[list[dict]], list[str], list[dict]], list[float]]

# Rewards whose options are `key=value` pairs: in `length:max=200` the "=" is an option's,
# as in `judge:MODEL?max_new_tokens=4`.
KEYED_OPTIONS = {"length": ",", "code_exec": ",", "judge": "&?"}


def parse_reward_spec(spec: str) -> tuple[str, float]:
    """Split `NAME[=WEIGHT]` into the reward name and its weight (1.0 when none is given)."""
    text = spec.strip()
    name, sep, weight = text.rpartition("=")
    if sep and name.strip() and not ends_inside_option(name):
        try:
            return name.strip(), float(weight)
        except ValueError:
            pass  # the "=" belongs to the name, e.g. length:max=200
    if not text:
        raise ConfigError(["empty reward spec"], hint="e.g. --reward exact_match or --reward format=0.2")
    return text, 1.0


def ends_inside_option(name: str) -> bool:
    """True for `length:max`: the text before the last "=" stops at an option key, so "=" is that option's."""
    base, _, arg = name.partition(":")
    if base == "prm":  # prm:REF:agg=HOW; a ":" inside REF (a drive letter) is followed by no bare word
        return re.fullmatch(r"[a-z_]+", arg.rpartition(":")[2]) is not None and ":" in arg
    if base not in KEYED_OPTIONS or not arg:
        return False
    separators = KEYED_OPTIONS[base]
    last = arg
    for sep in separators:
        last = last.rsplit(sep, 1)[-1]
    if base == "judge" and "?" not in arg:
        return False  # no query: nothing for the "=" to belong to
    return "=" not in last


def parse_options(arg: str | None, allowed: dict[str, type], what: str) -> dict:
    """`"a=1,b=2"` as `{"a": 1, "b": 2}`, each value converted to its type in `allowed`."""
    options = {}
    for item in (arg or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise ConfigError([f"reward {what}:{arg}: unknown option {item.strip()!r}"],
                              hint=f"options of {what}: {', '.join(f'{k}=N' for k in allowed)}, comma separated")
        try:
            options[key] = allowed[key](value)
        except ValueError:
            raise ConfigError([f"reward {what}:{arg}: {key} must be a number, got {value!r}"]) from None
    return options
