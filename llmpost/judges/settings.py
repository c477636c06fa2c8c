"""`JudgeSettings`: the `judge:` block of a config, and the `judge:` reward spec.

Which backend answers is decided by `base_url`:

    judge:                                   # a local transformers model
      model: judge-model                     # artifact ref, local path, hub id
    judge:                                   # any OpenAI-compatible chat-completions API
      base_url: http://127.0.0.1:8000/v1
      model: Qwen/Qwen2.5-7B-Instruct        # the name the server serves (asked for when omitted)
      api_key_env: OPENAI_API_KEY            # the NAME of the variable; its value is never stored

As a reward spec (`--reward judge:...`) the same settings are written on one line,
the first part being the local model ref or the base URL and the rest query-style
keys: `judge:judge-model`, `judge:judge-model?max_new_tokens=4`,
`judge:http://127.0.0.1:8000/v1?model=NAME&api_key_env=OPENAI_API_KEY`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import Field, field_validator, model_validator

from llmpost.config.base import Strict
from llmpost.errors import ConfigError
from llmpost.judges.prompts import (
    PAIRWISE_FIELDS,
    PAIRWISE_TEMPLATE,
    POINTWISE_FIELDS,
    POINTWISE_TEMPLATE,
    placeholders,
)

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NOT_A_NAME = "<hidden: not an environment variable name>"
SPEC_PREFIX = "judge:"


class JudgeSettings(Strict):
    model: str | None = Field(None, description="local: the judge model (artifact ref, path, hub id); HTTP: the model name the server serves")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint such as http://127.0.0.1:8000/v1; set = HTTP backend")
    api_key_env: str | None = Field(None, description="NAME of the environment variable holding the API key; the key is never stored")
    template: str = Field(PAIRWISE_TEMPLATE, description="pairwise prompt with {question} {a} {b} and optional {principles}")
    score_template: str = Field(POINTWISE_TEMPLATE, description="pointwise prompt (rewards for lone answers) with {question} {answer}")
    system: str | None = Field(None, description="system message sent before every judge prompt")
    principles: list[str] = Field(default_factory=list, description="rubric the judge applies, numbered into {principles} or the system message")
    max_new_tokens: int = Field(48, ge=1, description="longest judge reply: room to work the answer out before the verdict (the built-in judge writes up to 27 tokens of tiny)")
    temperature: float = Field(0.0, ge=0, description="judge sampling temperature; 0 = greedy, reproducible verdicts")
    batch_size: int | None = Field(None, ge=1, description="local: judge prompts generated at once; default 64, or on a CPU's "
                                                         "greedy judge as many as fit 2 GiB of KV cache (at most 256)")
    load_in_4bit: bool = Field(False, description="local: load the judge in 4-bit NF4 (bitsandbytes)")
    trust_remote_code: bool = Field(False, description="local: allow the judge's repo to run its own code")
    timeout_s: float = Field(60.0, gt=0, description="HTTP: seconds to wait for one reply before retrying")
    max_retries: int = Field(3, ge=0, description="HTTP: retries after a timeout, connection error, 429/5xx or malformed reply")
    backoff_s: float = Field(1.0, ge=0, description="HTTP: first retry delay; doubles on every further retry")
    concurrency: int = Field(4, ge=1, description="HTTP: requests in flight at once")
    cache: bool = Field(True, description="reuse judgments from the on-disk cache (<store>/.cache/judgments.sqlite)")
    max_error_rate: float = Field(0.1, ge=0, le=1, description="fail when more than this share of requests still fail after retries")

    @model_validator(mode="before")
    @classmethod
    def hide_misplaced_key(cls, data: Any) -> Any:
        # A key pasted into api_key_env would be echoed by the error message; replace it first.
        if isinstance(data, dict) and isinstance(data.get("api_key_env"), str) and not ENV_NAME.match(data["api_key_env"]):
            data = {**data, "api_key_env": NOT_A_NAME}
        return data

    @field_validator("api_key_env")
    @classmethod
    def check_env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key itself")
        return value

    @field_validator("base_url")
    @classmethod
    def check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. http://127.0.0.1:8000/v1")
        return value

    @field_validator("template")
    @classmethod
    def check_template(cls, value: str) -> str:
        return checked_template(value, PAIRWISE_FIELDS, required={"a", "b"})

    @field_validator("score_template")
    @classmethod
    def check_score_template(cls, value: str) -> str:
        return checked_template(value, POINTWISE_FIELDS, required={"answer"})

    @property
    def backend(self) -> str:
        """"http" when a base URL is set, else "local"."""
        return "http" if self.base_url else "local"

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.model)

    def describe(self) -> str:
        """How reports name this judge: the local model ref, or the endpoint (without credentials) and model."""
        if self.backend == "local":
            return f"local:{self.model}"
        return f"http:{redact_url(self.base_url)}" + (f" model={self.model}" if self.model else "")


def checked_template(template: str, allowed: set[str], required: set[str]) -> str:
    """`template` itself, or a ValueError naming unknown and missing placeholders."""
    used = placeholders(template)
    problems = [f"unknown placeholder {{{name}}}" for name in sorted(used - allowed)]
    problems += [f"missing placeholder {{{name}}}" for name in sorted(required - used)]
    if problems:
        raise ValueError("; ".join(problems) + f" (placeholders: {', '.join(sorted(allowed))})")
    return template


def redact_url(url: str | None) -> str:
    """`url` without user:password@ and query string, which can carry credentials."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def judge_target_flags(target: str | None) -> dict[str, str | None]:
    """`--judge X` as config keys: a URL sets judge.base_url, anything else judge.model."""
    if target is None:
        return {}
    if target.startswith(("http://", "https://")):
        return {"judge.base_url": target}
    return {"judge.model": target}


def parse_judge_spec(spec: str) -> JudgeSettings:
    """`judge:REF_OR_URL[?key=value&...]` (the `judge:` prefix optional) as validated settings."""
    from llmpost.config.resolve import describe_errors

    body = spec[len(SPEC_PREFIX):] if spec.startswith(SPEC_PREFIX) else spec
    target, _, query = body.partition("?")
    if not target:
        raise ConfigError([f"reward spec {spec!r} names no judge"],
                          hint="write judge:MODEL_REF or judge:http://HOST:PORT/v1?model=NAME")
    layer: dict[str, Any] = {key.split(".", 1)[1]: value for key, value in judge_target_flags(target).items()}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        value = yaml.safe_load(raw) if raw else ""
        if key == "principles" and isinstance(value, str):
            value = [p.strip() for p in value.split(";") if p.strip()]
        layer[key] = value
    from pydantic import ValidationError

    try:
        return JudgeSettings.model_validate(layer)
    except ValidationError as exc:
        problems = [f"{spec_key(spec)}: {p}" for p in describe_errors(JudgeSettings, exc)]
        raise ConfigError(problems, source="judge reward spec",
                          hint="keys after '?' are judge settings, e.g. judge:judge-model?max_new_tokens=4") from None


def spec_key(spec: str) -> str:
    """The spec as shown in errors, with any URL credentials removed."""
    body = spec[len(SPEC_PREFIX):] if spec.startswith(SPEC_PREFIX) else spec
    target = body.partition("?")[0]
    shown = redact_url(target) if target.startswith(("http://", "https://")) else target
    return SPEC_PREFIX + shown
