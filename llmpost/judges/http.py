"""A judge behind any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp, hosted APIs).

POST {base_url}/chat/completions with the standard library only. Each request
has a timeout; a timeout, a connection error, HTTP 408/409/429/5xx or a reply
that is not a chat completion is retried with exponential backoff (honouring
Retry-After), and still failing after `max_retries` it becomes a failed reply
that the report counts. A refused key (401/403) or a wrong URL or model (400/404)
stops the run at once with a hint. At most `concurrency` requests are in flight.

The API key is read from the environment variable named by `api_key_env` when
the backend opens, kept in memory only, and never put in an error message.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException

from llmpost.errors import ConfigError, ModelError
from llmpost.judges.reply import Reply
from llmpost.judges.settings import JudgeSettings, redact_url

RETRIED_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 60.0
BODY_SHOWN = 200  # characters of an error body quoted in messages


class Retryable(Exception):
    """A failure worth another try: timeout, connection trouble, overload, a malformed reply."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class HttpBackend:
    """Chat completions from an OpenAI-compatible server."""

    def __init__(self, settings: JudgeSettings):
        self.settings = settings
        self.base = settings.base_url.rstrip("/")
        self.shown = redact_url(self.base)
        self._key = read_api_key(settings.api_key_env)
        self.model = settings.model or self.only_served_model()
        self.name = f"http:{self.shown} model={self.model}"

    def identity(self) -> dict:
        s = self.settings
        return {"backend": "http", "url": self.shown, "model": self.model, "max_tokens": s.max_new_tokens,
                "temperature": s.temperature}

    def complete(self, conversations: list[list[dict]]) -> list[Reply]:
        """Replies in order, `concurrency` requests at a time."""
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            futures = [pool.submit(self.ask_one, c) for c in conversations]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def ask_one(self, messages: list[dict]) -> Reply:
        """One chat completion, retried with backoff; a Reply with `text=None` when every try failed."""
        s = self.settings
        body = {"model": self.model, "messages": messages, "max_tokens": s.max_new_tokens,
                "temperature": s.temperature}
        try:
            return self.retrying(lambda: parse_completion(self.post("/chat/completions", body)))
        except Retryable as exc:
            return Reply(None, error=str(exc))

    def retrying(self, call):
        """`call()`, retried with backoff on Retryable; the last Retryable (attempts noted) when all fail."""
        s = self.settings
        for attempt in range(s.max_retries + 1):
            try:
                return call()
            except Retryable as exc:
                if attempt == s.max_retries:
                    raise Retryable(f"{self.scrub(str(exc))} (after {attempt + 1} attempts)") from None
                time.sleep(retry_delay(s.backoff_s, attempt, exc.retry_after))

    def only_served_model(self) -> str:
        """The model to request when none is configured: the server's only model, from GET /models."""
        try:
            listing = self.retrying(lambda: self.request("GET", "/models", None))
        except Retryable as exc:
            raise ModelError(f"cannot list the models of the judge endpoint: {exc}",
                             hint="check that the server is up, or set --judge-model NAME") from None
        names = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
        if len(names) == 1 and names[0]:
            return names[0]
        raise ConfigError([f"judge.model is not set and {self.shown} serves {len(names)} models: "
                           + (", ".join(map(str, names[:10])) or "none listed")],
                          hint="set --judge-model NAME (judge.model) to the model to ask")

    def scrub(self, text: str) -> str:
        """`text` with the API key blotted out, should a server ever echo it back."""
        return text.replace(self._key, "***") if self._key else text

    def post(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body)

    def request(self, method: str, path: str, body: dict | None) -> dict:
        """Send one request; return the decoded JSON object, raise Retryable or a user-facing error."""
        url = self.base + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self.http_error(exc, path) from None
        except TimeoutError:
            raise Retryable(f"no reply from {self.shown}{path} within {self.settings.timeout_s:g}s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise Retryable(f"no reply from {self.shown}{path} within {self.settings.timeout_s:g}s") from None
            raise Retryable(f"cannot reach {self.shown}{path}: {exc.reason}") from None
        except (ConnectionError, HTTPException, OSError) as exc:
            raise Retryable(f"connection to {self.shown}{path} failed: {type(exc).__name__}: {exc}") from None
        try:
            decoded = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise Retryable(f"malformed reply from {self.shown}{path}: not JSON: {snippet(raw)}") from None
        if not isinstance(decoded, dict):
            raise Retryable(f"malformed reply from {self.shown}{path}: expected a JSON object: {snippet(raw)}")
        return decoded

    def http_error(self, exc: urllib.error.HTTPError, path: str) -> Exception:
        """Retryable for overload and server errors; an error that stops the run for the rest."""
        try:
            body = self.scrub(snippet(exc.read()))
        except Exception:
            body = ""
        where = f"{self.shown}{path}"
        if exc.code in RETRIED_STATUS:
            return Retryable(f"HTTP {exc.code} from {where}: {body}", retry_after=retry_after(exc.headers))
        if exc.code in (401, 403):
            env = self.settings.api_key_env
            hint = (f"check the key in ${env}" if env else
                    "this server needs an API key: put it in an environment variable and set --api-key-env NAME")
            return ModelError(f"the judge endpoint {where} refused the request (HTTP {exc.code}): {body}", hint=hint)
        return ModelError(f"the judge endpoint {where} answered HTTP {exc.code}: {body}",
                          hint="check judge.base_url (it usually ends in /v1) and judge.model")


def parse_completion(reply: dict) -> Reply:
    """The text and token usage of a chat-completions reply; Retryable when it is not one."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise Retryable(f"malformed reply: no choices[0].message.content in {snippet(json.dumps(reply))}") from None
    if content is not None and not isinstance(content, str):
        raise Retryable(f"malformed reply: message content is {type(content).__name__}, not text")
    usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
    return Reply((content or "").strip(), int(usage.get("prompt_tokens") or 0),
                 int(usage.get("completion_tokens") or 0))


def read_api_key(env_name: str | None) -> str | None:
    """The API key from the environment variable named `env_name` (no name: no key)."""
    if env_name is None:
        return None
    key = os.environ.get(env_name, "").strip()
    if not key:
        raise ConfigError([f"judge.api_key_env names ${env_name}, which is not set or empty"],
                          hint=f"export {env_name}=... before running (the key is read from the environment only)")
    return key


def retry_delay(backoff_s: float, attempt: int, retry_after_s: float | None) -> float:
    """Exponential backoff with a little jitter, or the server's Retry-After when it gave one."""
    if retry_after_s is not None:
        return min(retry_after_s, MAX_RETRY_AFTER_S)
    return backoff_s * (2 ** attempt) * (1 + 0.1 * random.random())


def retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def snippet(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return text[:BODY_SHOWN] + ("..." if len(text) > BODY_SHOWN else "")
