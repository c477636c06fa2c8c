"""User reward functions: `path/to/file.py:fn` or `module:fn`, with TRL's reward signature.

A user function is called the way TRL's GRPOTrainer calls reward functions:

    fn(prompts=[[messages]], completions=[[{"role": "assistant", "content": text}]], **columns)

where `columns` holds each dataset column as a list (`answer=[...]`, `tests=[...]`), and
returns one float (or None: not applicable) per completion. So a function written
for TRL works unchanged, and one written for llmpost works in plain TRL. It is imported
only from the explicit reference in the config, never discovered.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from llmpost.errors import ConfigError

HINT = "a user reward is `path/to/file.py:function` or `package.module:function`"


def is_user_reference(name: str) -> bool:
    """Whether `name` looks like `file.py:fn` or `module:fn` (a built-in name has no colon)."""
    target, sep, fn = name.rpartition(":")
    return bool(sep and target and fn.isidentifier())


def is_file_reference(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def load_user_function(name: str):
    """The callable `name` refers to; ConfigError with a hint when the file, module or function is missing."""
    target, _, fn_name = name.rpartition(":")
    module = load_file(target) if is_file_reference(target) else load_module(target)
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        found = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_"))
        raise ConfigError([f"reward {name}: {target} has no function {fn_name!r}"],
                          hint=f"functions found: {', '.join(found) or 'none'}")
    return fn


def load_file(target: str):
    path = Path(target).expanduser()
    if not path.is_file():
        raise ConfigError([f"reward file {target} does not exist"], hint=HINT)
    # A module name unique to the file's path, so two files named rewards.py never collide.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"llmpost_user_reward_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError([f"reward file {target} failed to import: {type(exc).__name__}: {exc}"],
                          hint="run `python " + str(path) + "` to see the full error") from None
    sys.modules[module_name] = module
    return module


def load_module(target: str):
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise ConfigError([f"reward module {target} cannot be imported: {exc}"],
                          hint=HINT + "; a module must be importable (installed or on PYTHONPATH)") from None


def user_reward(name: str):
    """Adapt the user's TRL-style function to llmpost's `(prompts, completions, rows)` reward signature."""
    fn = load_user_function(name)

    def call_user_function(prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list:
        columns = {key: [row.get(key) for row in rows] for key in column_names(rows)}
        messages = [[{"role": "assistant", "content": text}] for text in completions]
        return fn(prompts=prompts, completions=messages, **columns)

    call_user_function.source_file = file_of(name)
    return call_user_function


def column_names(rows: list[dict]) -> list[str]:
    """Every column of the rows except the prompt and completion themselves, in first-seen order."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(k for k in row if k not in ("prompt", "completion", "completions")))
    return list(names)


def file_of(name: str) -> Path | None:
    target = name.rpartition(":")[0]
    return Path(target).expanduser().resolve() if is_file_reference(target) else None
