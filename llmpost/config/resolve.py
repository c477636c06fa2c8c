"""Merge configuration layers into one validated config, and read the layers' sources.

Precedence, lowest to highest (the same for `llmpost <stage>` and `llmpost run`):

    model defaults < recipe `defaults:` < recipe stage block < `--config FILE`
    < explicit flags < `--set a.b=c`

`config.layers.stage_layers()` puts a stage's sources in that order and `resolve()`
merges and validates them; both commands go through the two, so they cannot drift.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from llmpost.config.base import Strict
from llmpost.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def resolve(model_cls: type[M], layers: list[dict[str, Any]], source: str = "config") -> M:
    """Deep-merge `layers` (lowest precedence first) and validate them as `model_cls`.

    Every problem is reported at once, with its dotted path and, for a typo, the
    closest valid key; so are the keys the model refuses (`Strict.refused_keys`).
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer or {})
    problems = model_cls.refused_keys(merged) if issubclass(model_cls, Strict) else []
    try:
        cfg = model_cls.model_validate(merged)
    except ValidationError as exc:
        problems = describe_errors(model_cls, exc) + problems
    if problems:
        raise ConfigError(problems, source=source, hint="see `--help` or `--print-config` for the valid keys")
    return cfg


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Return `base` updated by `over`; nested dicts merge, everything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """Turn `["a.b=1", "c=[x, y]"]` into `{"a": {"b": 1}, "c": ["x", "y"]}` (values read as YAML)."""
    out: dict[str, Any] = {}
    problems = []
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. --set max_steps=3")
            continue
        value = set_value(raw)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    if problems:
        raise ConfigError(problems, source="--set")
    return out


def set_value(raw: str) -> Any:
    """A `--set` value read as YAML (`3`, `true`, `[a, b]`, `{r: 8}`), else the text as given.

    A mapping must be written in braces: `judge.system=Reply with one letter: A or B.` is a
    sentence, not the mapping {"Reply with one letter": "A or B."} that YAML would read.
    """
    if not raw.strip():
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, dict) and not raw.lstrip().startswith("{"):
        return raw
    return value


def load_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Read a YAML mapping with `yaml.safe_load`; malformed YAML names the line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"{what} {str(p)!r} does not exist"], source=what, hint="check the path")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{p}: malformed YAML{where}: {problem}"], source=what,
                          hint="fix the YAML syntax (indentation, ':' after keys, quotes)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{p}: expected a mapping of key: value, got {type(data).__name__}"], source=what)
    return data


def describe_errors(model_cls: type[BaseModel], exc: ValidationError) -> list[str]:
    """One line per pydantic error: dotted path, message, and a suggestion for typos."""
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            valid = field_names_at(model_cls, loc[:-1])
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
            tip = f"; did you mean `{'.'.join(loc[:-1] + close)}`?" if close else ""
            problems.append(f"{path}: unknown key{tip}")
        else:
            given = err.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            problems.append(f"{path}: {err['msg']}{shown}")
    return problems


def field_names_at(model_cls: type[BaseModel], loc: list[str]) -> list[str]:
    """The valid keys of the (nested) model found by following `loc` from `model_cls`."""
    current: Any = model_cls
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    return list(getattr(current, "model_fields", {}).keys())


def to_yaml(model: BaseModel) -> str:
    """The resolved config as YAML, in field order (what `--print-config` prints)."""
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)
