"""SFT and prompt formats: detect a row's shape and normalize it to TRL's conversational form.

Every stage sees messages, never raw columns: a prompt is a list of
`{"role", "content"}` messages and a completion is a list of assistant messages.

    to_sft(rows, source)      -> [{"prompt": [msgs], "completion": [assistant msg]}]
    to_prompts(rows, source)  -> [{"prompt": [msgs], "answer": str | None, **other columns}]

Formats are detected per row, so a uniform file and a mixed one both work. A row
that fits no format is a `DataError` naming the source, the 1-based row number,
the columns found and the formats accepted.

Every message list, wherever it is accepted (SFT, prompts, preference pairs), may
use only the roles in `CHAT_ROLES`; any other role is a `DataError` naming it.

Preference data (pairs and rankings) lives in `preferences.py`, unpaired feedback
(thumbs up / down) in `feedback.py`; reading files lives in `load.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from llmpost.errors import DataError

SFT_HINT = (
    "accepted formats: messages | prompt+completion | instruction+input+output (Alpaca) "
    "| conversations (ShareGPT)"
)
PROMPT_HINT = (
    "accepted formats: prompt (+answer/reference/solution/ground_truth) | question+answer (GSM8K) "
    "| messages | prompt+completion | instruction+input+output (Alpaca) | conversations (ShareGPT)"
)

# Where an expected answer may live, in order of preference.
ANSWER_KEYS = ("answer", "reference", "solution", "ground_truth")

# The roles a message may have. "tool" is left out on purpose: a message here keeps only
# role and content, so an assistant's tool calls would be dropped and the tool results
# would follow turns that never asked for them.
CHAT_ROLES = ("system", "user", "assistant")

# ShareGPT speaker names seen in the wild, mapped to chat roles.
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "system": "system",
}


class RowProblem(ValueError):
    """What is wrong with one row; the caller adds the source and row number."""


# --- shared row helpers (also used by preferences.py) ---------------------------------


def has(row: dict, *keys: str) -> bool:
    """True when every key is present with a value: Arrow-backed files fill absent columns with None."""
    return all(row.get(k) is not None for k in keys)


def columns_found(row: dict) -> str:
    """The row's non-empty columns, comma separated, as shown in error messages."""
    cols = [str(k) for k, v in row.items() if v is not None]
    return ", ".join(cols) if cols else "none"


def kind_of(value: object) -> str:
    """A short name of a value's type for error messages ("a string", "a list", ...)."""
    names = {str: "a string", list: "a list", dict: "an object", type(None): "null", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def as_text(value: object, what: str) -> str:
    """A string field; plain numbers are accepted too (a completion of `42` means "42")."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise RowProblem(f"{what} must be a string, got {kind_of(value)}")


def as_messages(value: object, what: str) -> list[dict]:
    """A non-empty list of `{"role", "content"}` messages, reduced to exactly those two keys."""
    if not isinstance(value, list) or not value:
        raise RowProblem(
            f"'{what}' must be a non-empty list of {{role, content}} messages, got {kind_of(value)}"
        )
    messages = []
    for i, message in enumerate(value, 1):
        if not isinstance(message, dict):
            raise RowProblem(f"'{what}' message {i} is {kind_of(message)}, not a {{role, content}} object")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise RowProblem(f"'{what}' message {i} has no 'role'")
        if role not in CHAT_ROLES:
            raise RowProblem(f"'{what}' message {i} has role {role!r}; {_accepted_roles(role)}")
        content = as_text(message.get("content"), f"'{what}' message {i} content")
        messages.append({"role": role, "content": content})
    return messages


def _accepted_roles(role: str) -> str:
    accepted = f"accepted roles: {', '.join(CHAT_ROLES)}"
    if role.lower() in CHAT_ROLES:
        return f"{accepted} (lower case)"
    if role.lower() in ("tool", "function", "ipython"):
        return f"{accepted}; tool calls and tool results are not supported"
    return accepted


def as_prompt(value: object, what: str = "prompt") -> list[dict]:
    """A prompt given as a string (one user turn) or as a list of messages."""
    if isinstance(value, str):
        return [user(value)]
    return as_messages(value, what)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def split_last_assistant(messages: list[dict], what: str) -> tuple[list[dict], list[dict]]:
    """(earlier turns, [final assistant turn]); system messages stay with the earlier turns."""
    last = messages[-1]
    if last["role"] != "assistant":
        raise RowProblem(f"the last message of '{what}' must be from the assistant, got {last['role']!r}")
    if len(messages) < 2:
        raise RowProblem(f"'{what}' needs at least one turn before the final assistant reply")
    return messages[:-1], [last]


def completion_text(completion: list[dict]) -> str:
    """The text of a completion: its assistant turns joined (nearly always exactly one)."""
    return "\n\n".join(m["content"] for m in completion if m["role"] == "assistant")


def convert_rows(
    rows: Iterable[dict],
    source: str,
    detect: Callable[[dict], Callable[[dict], dict] | None],
    kind: str,
    hint: str,
) -> list:
    """Convert each row with the converter `detect` picks, turning row problems into DataErrors."""
    out = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"{source}: row {n} is {kind_of(row)}, not an object with columns", hint=hint)
        convert = detect(row)
        if convert is None:
            raise DataError(
                f"{source}: row {n} fits no {kind} format (columns found: {columns_found(row)})", hint=hint
            )
        try:
            out.append(convert(row))
        except RowProblem as problem:
            raise DataError(f"{source}: row {n}: {problem}", hint=hint) from None
    return out


# --- SFT ---------------------------------------------------------------------------------


def to_sft(rows: Iterable[dict], source: str) -> list[dict]:
    """Normalize SFT rows to `{"prompt": [msgs], "completion": [assistant msg]}`.

    Accepts chat `messages`, `prompt`/`completion` (strings or messages), Alpaca
    `instruction`/`input`/`output` and ShareGPT `conversations`. `source` names the
    data in errors (the path or ref the user wrote).
    """
    return convert_rows(rows, source, _detect_sft, "SFT", SFT_HINT)


def _detect_sft(row: dict) -> Callable[[dict], dict] | None:
    if has(row, "messages"):
        return _sft_from_messages
    if has(row, "conversations"):
        return _sft_from_sharegpt
    if has(row, "prompt", "completion"):
        return _sft_from_prompt_completion
    if has(row, "instruction", "output"):
        return _sft_from_alpaca
    return None


def _sft_from_messages(row: dict) -> dict:
    prompt, completion = split_last_assistant(as_messages(row["messages"], "messages"), "messages")
    return {"prompt": prompt, "completion": completion}


def _sft_from_sharegpt(row: dict) -> dict:
    messages = sharegpt_messages(row["conversations"])
    prompt, completion = split_last_assistant(messages, "conversations")
    return {"prompt": prompt, "completion": completion}


def _sft_from_prompt_completion(row: dict) -> dict:
    prompt = as_prompt(row["prompt"])
    value = row["completion"]
    completion = [assistant(value)] if isinstance(value, str) else as_messages(value, "completion")
    return {"prompt": prompt, "completion": completion}


def _sft_from_alpaca(row: dict) -> dict:
    return {
        "prompt": [user(alpaca_instruction(row))],
        "completion": [assistant(as_text(row["output"], "'output'"))],
    }


def alpaca_instruction(row: dict) -> str:
    """Alpaca's user turn: the instruction, then the optional input after a blank line."""
    instruction = as_text(row["instruction"], "'instruction'")
    extra = row.get("input")
    extra = "" if extra is None else as_text(extra, "'input'")
    return f"{instruction}\n\n{extra}" if extra.strip() else instruction


def sharegpt_messages(value: object) -> list[dict]:
    """ShareGPT `[{"from": "human", "value": ...}]` turns as chat messages."""
    if not isinstance(value, list) or not value:
        raise RowProblem(
            f"'conversations' must be a non-empty list of {{from, value}} turns, got {kind_of(value)}"
        )
    messages = []
    for i, turn in enumerate(value, 1):
        if not isinstance(turn, dict):
            raise RowProblem(f"'conversations' turn {i} is {kind_of(turn)}, not a {{from, value}} object")
        # Some ShareGPT exports already use role/content inside `conversations`.
        speaker = turn.get("from", turn.get("role"))
        role = SHAREGPT_ROLES.get(str(speaker).lower()) if speaker is not None else None
        if role is None:
            raise RowProblem(
                f"'conversations' turn {i} has speaker {speaker!r}; "
                f"expected one of {', '.join(sorted(SHAREGPT_ROLES))}"
            )
        text = as_text(turn.get("value", turn.get("content")), f"'conversations' turn {i} value")
        messages.append({"role": role, "content": text})
    return messages


# --- prompts (PPO, GRPO, evaluation) -----------------------------------------------------


def to_prompts(rows: Iterable[dict], source: str) -> list[dict]:
    """Normalize prompt rows to `{"prompt": [msgs], "answer": str | None, **other columns}`.

    Accepts `prompt` with an optional `answer`/`reference`/`solution`/`ground_truth`,
    GSM8K `question`/`answer`, chat `messages` (the final assistant turn becomes the
    answer) and every SFT format (the completion becomes the answer). Answers are kept
    verbatim ("... #### 42" stays as is). Columns not consumed (e.g. `tests`) are kept,
    because reward functions receive them.
    """
    return convert_rows(rows, source, _detect_prompt, "prompt", PROMPT_HINT)


def _detect_prompt(row: dict) -> Callable[[dict], dict] | None:
    if has(row, "prompt", "completion"):
        return _prompt_from_sft
    if has(row, "prompt"):
        return _prompt_from_prompt
    if has(row, "question"):
        return _prompt_from_question
    if has(row, "messages"):
        return _prompt_from_messages
    if has(row, "conversations") or has(row, "instruction", "output"):
        return _prompt_from_sft
    if has(row, "instruction"):
        return _prompt_from_alpaca_instruction
    return None


def _with_extras(row: dict, consumed: Iterable[str], prompt: list[dict], answer: str | None) -> dict:
    skip = set(consumed) | {"prompt", "answer"}
    extras = {k: v for k, v in row.items() if k not in skip}
    return {"prompt": prompt, "answer": answer, **extras}


def _prompt_from_prompt(row: dict) -> dict:
    key = next((k for k in ANSWER_KEYS if has(row, k)), None)
    answer = as_text(row[key], f"'{key}'") if key else None
    return _with_extras(row, ["prompt", key] if key else ["prompt"], as_prompt(row["prompt"]), answer)


def _prompt_from_question(row: dict) -> dict:
    answer = as_text(row["answer"], "'answer'") if has(row, "answer") else None
    return _with_extras(row, ["question", "answer"], [user(as_text(row["question"], "'question'"))], answer)


def _prompt_from_messages(row: dict) -> dict:
    messages = as_messages(row["messages"], "messages")
    # A conversation that does not end with the assistant is all prompt, with no answer.
    if messages[-1]["role"] == "assistant":
        prompt, completion = split_last_assistant(messages, "messages")
        return _with_extras(row, ["messages"], prompt, completion_text(completion))
    return _with_extras(row, ["messages"], messages, None)


def _prompt_from_sft(row: dict) -> dict:
    sft = _detect_sft(row)(row)  # the caller checked that an SFT format fits
    consumed = ["messages", "conversations", "prompt", "completion", "instruction", "input", "output"]
    return _with_extras(row, consumed, sft["prompt"], completion_text(sft["completion"]))


def _prompt_from_alpaca_instruction(row: dict) -> dict:
    return _with_extras(row, ["instruction", "input"], [user(alpaca_instruction(row))], None)
