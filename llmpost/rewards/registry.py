"""The reward registry: one place that turns a reward spec into a function, used by grpo, ppo and eval.

A reward function (`RewardFn`) takes the prompts (message lists), the completion
texts and the dataset rows (with their `answer`, `tests`, ... columns) and returns
one float per completion, or None where it does not apply.

    --reward NAME[=WEIGHT]     what NAME may be                       scores
    exact_match                final answer == row["answer"]           1 / 0
    math                       the same, LaTeX-aware (\\frac, %, x=)    1 / 0
    checked_answer             exact_match, and its equations hold     1 / 0
    format[:REGEX]             whole completion matches (R1-Zero tags) 1 / 0
    length[:min=N,max=M]       characters inside the band              0 down to -1
    code_exec[:cpu=2,wall=5]   row["tests"] passing, in a sandbox      0 .. 1
    rm:REF                     a reward-model artifact (`llmpost rm`)  the model's score
    prm:REF[:agg=min]          a process reward model (`llmpost prm`)  its steps' (lines') scores
                               agg: min, prod, last or mean            aggregated, 0 .. 1
    judge:SPEC                 an LLM judge (`llmpost judge`)          the judge's score
    path/to/file.py:fn         a user function, TRL's signature        what it returns
    module:fn

`CombinedReward` sums several with their weights and reports each one separately.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmpost.errors import ConfigError, DataError, LlmpostError
from llmpost.rewards.code_exec import code_exec_reward
from llmpost.rewards.format import format_reward
from llmpost.rewards.length import length_reward
from llmpost.rewards.spec import RewardFn, parse_reward_spec
from llmpost.rewards.user import file_of, is_user_reference, user_reward
from llmpost.rewards.verifiers import exact_match, math_answer
from llmpost.rewards.work import checked_answer

__all__ = ["RewardFn", "RewardError", "CombinedReward", "build_reward", "check_reward_spec", "parse_reward_spec",
           "reward_model_refs", "reward_names"]

# What TRL's GRPOTrainer passes to a reward function besides the dataset columns.
TRL_CONTROL_KWARGS = {"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}
ERROR_HINT = ("a reward gets (prompts, completions, rows) and returns one float (or None) per completion; "
              "a user function gets TRL's fn(prompts, completions, **columns); LLMPOST_DEBUG=1 shows the traceback")


class RewardError(LlmpostError):
    """A reward function raised or returned something unusable: the job fails (exit 1), naming both."""

    exit_code = 1


@dataclass(frozen=True)
class Builtin:
    make: Callable[[str | None], RewardFn]  # from the text after "NAME:" (None when there is none)
    needs: tuple[str, ...]  # dataset columns it reads
    summary: str


def no_options(name: str, fn: RewardFn) -> Callable[[str | None], RewardFn]:
    def make(arg: str | None) -> RewardFn:
        if arg:
            raise ConfigError([f"reward {name}:{arg}: {name} takes no options"], hint=f"write just `{name}`")
        return fn
    return make


BUILTINS: dict[str, Builtin] = {
    "exact_match": Builtin(no_options("exact_match", exact_match), ("answer",),
                           "final answer equals the `answer` column (numeric compare)"),
    "math": Builtin(no_options("math", math_answer), ("answer",),
                    "like exact_match, LaTeX-aware: \\frac{1}{2} = 0.5, 50\\% = 50"),
    "checked_answer": Builtin(no_options("checked_answer", checked_answer), ("answer",),
                              "exact_match, and every a op b = c in the work holds, the last c the answer"),
    "format": Builtin(format_reward, (), "completion matches a regex; default <think>..</think><answer>..</answer>"),
    "length": Builtin(length_reward, (), "0 inside a band of characters, down to -1 outside"),
    "code_exec": Builtin(code_exec_reward, ("tests",), "fraction of the `tests` column passing, sandboxed"),
}
PREFIXED = {"rm": "a reward-model artifact: rm:NAME", "prm": "a process reward model: prm:NAME[:agg=min]",
            "judge": "an LLM judge: judge:SPEC"}


def reward_names() -> list[str]:
    """Every name `--reward` accepts, for help texts and error hints."""
    return [*BUILTINS, *(f"{p}:..." for p in PREFIXED), "path/file.py:fn", "module:fn"]


def build_reward(name: str, store=None) -> RewardFn:
    """The reward function `name` refers to (without its `=WEIGHT`); ConfigError for an unknown name."""
    base, _, arg = name.partition(":")
    if base in BUILTINS:
        return BUILTINS[base].make(arg or None)
    if base == "rm":
        return model_reward(arg, store)
    if base == "prm":
        from llmpost.rewards.process_reward import ProcessReward

        return ProcessReward(arg, store)
    if base == "judge":
        return judge_reward(arg, store)
    if is_user_reference(name):
        return user_reward(name)
    raise ConfigError([check_reward_spec(name)], hint="see `llmpost grpo --help` for the rewards")


def check_reward_spec(spec: str) -> str | None:
    """What is wrong with `spec` as far as can be told without loading models or files, or None."""
    try:
        name, _ = parse_reward_spec(spec)
        base, _, arg = name.partition(":")
        if base in BUILTINS:
            BUILTINS[base].make(arg or None)  # cheap: checks a regex or options
            return None
        if base == "prm":
            from llmpost.rewards.process_reward import parse_prm_arg

            parse_prm_arg(arg)  # the reference and `agg=`; whether it is a PRM shows when it loads
            return None
    except ConfigError as exc:
        return "; ".join(exc.problems)
    if base in PREFIXED or is_user_reference(name):
        return None
    close = difflib.get_close_matches(base, list(BUILTINS) + list(PREFIXED), n=1, cutoff=0.6)
    tip = f" (did you mean `{close[0]}`?)" if close else ""
    return f"unknown reward {name!r}{tip}; rewards: {', '.join(reward_names())}"


def check_reward_specs(specs: Sequence[str], required: bool) -> list[str]:
    """A config validator's check of its reward specs: ValueError naming every bad one (and none, when `required`)."""
    problems = [p for p in map(check_reward_spec, specs) if p]
    if required and not specs:
        problems.append("give at least one reward, e.g. exact_match or rm:MY-RM")
    if problems:
        raise ValueError("; ".join(problems))
    return list(specs)


def reward_model_refs(specs: Sequence[str]) -> list[str]:
    """The model references the rewards in `specs` will load (reward models, local judges), for lineage."""
    refs = []
    for spec in specs:
        name, _ = parse_reward_spec(spec)
        base, _, arg = name.partition(":")
        if base == "rm" and arg:
            refs.append(arg)
        elif base == "prm" and arg:
            from llmpost.rewards.process_reward import parse_prm_arg

            refs.append(parse_prm_arg(arg)[0])
        elif base == "judge" and arg:
            from llmpost.judges.settings import parse_judge_spec

            settings = parse_judge_spec(arg)
            if settings.backend == "local":
                refs.append(settings.model)
    return refs


def model_reward(ref: str, store) -> RewardFn:
    """`rm:REF`: the scalar score of a reward-model artifact (written by `llmpost rm`)."""
    if not ref:
        raise ConfigError(["reward rm: needs a reward-model reference"], hint="e.g. --reward rm:my-rm")
    from llmpost.rewards.reward_model import RewardModelScorer  # torch, only when an RM is used

    scorer = RewardModelScorer(ref, store)

    def reward_model_score(prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list[float]:
        return list(scorer.score(prompts, completions))

    reward_model_score.artifacts = [scorer.artifact] if getattr(scorer, "artifact", None) is not None else []
    return reward_model_score


def judge_reward(spec: str, store) -> RewardFn:
    """`judge:SPEC`: an LLM judge's score (see `llmpost judge` and `llmpost.rewards.judge_reward`)."""
    if not spec:
        raise ConfigError(["reward judge: needs a judge spec"], hint="e.g. --reward judge:my-judge")
    from llmpost.rewards.judge_reward import make_judge_reward

    reward = make_judge_reward(spec, store)
    # A local judge model that is an artifact belongs to this run's lineage.
    refs = getattr(reward, "model_refs", None) or []
    artifacts = [store.try_resolve(ref) for ref in refs] if store is not None else []
    reward.artifacts = [a for a in artifacts if a is not None]
    return reward


class CombinedReward:
    """Several rewards with weights: `CombinedReward(["exact_match", "format=0.2"], store)`.

    Calling it returns the weighted sum per completion and each reward's own values;
    `trl_functions()` gives the same rewards to TRL's GRPOTrainer (with `weights`),
    which then logs each one's mean as `rewards/NAME/mean`.
    """

    def __init__(self, specs: Sequence[str], store=None):
        if isinstance(specs, str):
            specs = [specs]
        if not specs:
            raise ConfigError(["no reward given"], hint="e.g. --reward exact_match (repeatable)")
        parsed = [parse_reward_spec(s) for s in specs]
        self.specs: list[str] = [name for name, _ in parsed]
        self.weights: list[float] = [weight for _, weight in parsed]
        self.names: list[str] = display_names(self.specs)
        self.functions: list[RewardFn] = [build_reward(name, store) for name in self.specs]

    @property
    def artifacts(self) -> list:
        """The store artifacts the rewards read (reward models, judges), for the manifest's lineage."""
        return [a for fn in self.functions for a in getattr(fn, "artifacts", None) or []]

    def __call__(self, prompts: list[list[dict]], completions: list[str],
                 rows: list[dict]) -> tuple[list[float], dict[str, list[float]]]:
        """(weighted total per completion, {reward name: its values}); NaN where a reward does not apply."""
        per = self.values(prompts, completions, rows)
        return self.total(per), per

    def values(self, prompts: list[list[dict]], completions: list[str], rows: list[dict],
               skip: str | None = None) -> dict[str, list[float]]:
        """{reward name: its values}, NaN where it does not apply; `skip` names one not to run (PPO's dense PRM)."""
        return {name: call_reward(name, fn, prompts, completions, rows)
                for name, fn in zip(self.names, self.functions, strict=True) if name != skip}

    def total(self, per: dict[str, list[float]]) -> list[float]:
        """The weighted total per completion of the rewards in `per` (what `values` returned)."""
        weights = dict(zip(self.names, self.weights, strict=True))
        return weighted_total(list(per.values()), [weights[name] for name in per])

    def check_rows(self, rows: list[dict], source: str) -> None:
        """Fail before training when a reward needs a column the data lacks entirely."""
        problems = []
        for spec, name in zip(self.specs, self.names, strict=True):
            builtin = BUILTINS.get(spec.partition(":")[0])
            for column in builtin.needs if builtin else ():
                if not any(row.get(column) is not None for row in rows):
                    found = sorted({k for row in rows[:50] for k, v in row.items() if v is not None})
                    problems.append(f"reward {name} needs a {column!r} column; {source} has: {', '.join(found)}")
        if problems:
            raise DataError("; ".join(problems),
                            hint="give data with that column, or choose a reward that does not need it")

    def trl_functions(self) -> list[Callable]:
        """The rewards as TRL reward functions, named after them (TRL logs `rewards/NAME/mean`)."""
        return [trl_function(name, fn) for name, fn in zip(self.names, self.functions, strict=True)]

    def describe(self) -> list[dict]:
        """What was used, for eval.json: names, weights, and the sha256 of user reward files."""
        out = []
        for spec, name, weight in zip(self.specs, self.names, self.weights, strict=True):
            entry = {"name": name, "spec": name if spec.startswith("judge:") else spec, "weight": weight}
            path = file_of(spec) if is_user_reference(spec) and spec.partition(":")[0] not in BUILTINS else None
            if path is not None and path.is_file():
                entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            out.append(entry)
        return out


def display_names(specs: list[str]) -> list[str]:
    """Short, unique names for logs: `format:REGEX` -> format, `dir/my.py:fn` -> my.py:fn."""
    names = []
    for spec in specs:
        base = spec.partition(":")[0]
        if base in BUILTINS:
            name = base
        elif base == "judge":
            name = "judge:" + public_target(spec.partition(":")[2])
        elif base == "prm":
            from llmpost.rewards.process_reward import display_name

            name = display_name(spec.partition(":")[2])
        elif base in PREFIXED:
            name = spec
        else:
            target, _, fn = spec.rpartition(":")
            name = f"{target.replace(chr(92), '/').rsplit('/', 1)[-1]}:{fn}"
        n, unique = 2, name
        while unique in names:
            unique, n = f"{name}#{n}", n + 1
        names.append(unique)
    return names


def public_target(judge_spec: str) -> str:
    """A judge spec without its `?options` and without credentials in a URL, fit for logs."""
    from urllib.parse import urlsplit, urlunsplit

    target = judge_spec.partition("?")[0]
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        target = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    return target


def trl_function(name: str, fn: RewardFn) -> Callable:
    """`fn` with TRL's reward signature: fn(prompts, completions, **columns) -> list of floats."""
    from llmpost.data.formats import completion_text

    def reward(prompts, completions, **kwargs):
        texts = [completion_text(c) if isinstance(c, list) else c for c in completions]
        columns = {k: v for k, v in kwargs.items() if k not in TRL_CONTROL_KWARGS}
        rows = [{"prompt": p, **{k: v[i] for k, v in columns.items()}} for i, p in enumerate(prompts)]
        return call_reward(name, fn, prompts, texts, rows)

    reward.__name__ = reward.__qualname__ = name
    return reward


def call_reward(name: str, fn: RewardFn, prompts: list[list[dict]], completions: list[str],
                rows: list[dict]) -> list[float]:
    """`fn`'s values as floats (None -> NaN); a RewardError naming `name` and the row when it fails."""
    try:
        values = fn(prompts, completions, rows)
    except LlmpostError:
        raise
    except Exception as exc:
        index, row_exc = first_failing_row(fn, prompts, completions, rows)
        culprit = row_exc or exc
        where = describe_row(index, prompts, completions, rows) if index is not None else \
            f"a batch of {len(completions)} (no single row fails on its own)"
        raise RewardError(f"reward {name} raised {type(culprit).__name__}: {culprit} — on {where}",
                          hint=ERROR_HINT) from exc
    return as_floats(name, values, prompts, completions, rows)


def first_failing_row(fn: RewardFn, prompts, completions, rows) -> tuple[int | None, Exception | None]:
    """The first row the reward raises on when called with it alone (to name it in the error)."""
    for i in range(len(completions)):
        try:
            fn(prompts[i:i + 1], completions[i:i + 1], rows[i:i + 1])
        except Exception as exc:
            return i, exc
    return None, None


def describe_row(i: int, prompts, completions, rows) -> str:
    row = rows[i]
    number = row.get("row_number")
    prompt = prompts[i][-1]["content"] if prompts[i] and isinstance(prompts[i], list) else prompts[i]
    columns = {k: v for k, v in row.items() if k not in ("prompt", "row_number")}
    label = f"data row {number}" if number is not None else f"row {i + 1} of the batch"
    return (f"{label}: prompt {shorten(prompt)}, completion {shorten(completions[i])}"
            + (f", columns {shorten(columns)}" if columns else ""))


def shorten(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_floats(name: str, values: object, prompts, completions, rows) -> list[float]:
    """Check a reward's return value: one number (or None) per completion."""
    if hasattr(values, "tolist"):  # numpy arrays and torch tensors
        values = values.tolist()
    if not isinstance(values, (list, tuple)) or len(values) != len(completions):
        got = f"{len(values)} values" if isinstance(values, (list, tuple)) else type(values).__name__
        raise RewardError(f"reward {name} returned {got} for {len(completions)} completions",
                          hint="return a list with one float (or None) per completion")
    out = []
    for i, value in enumerate(values):
        if value is None:
            out.append(math.nan)
        elif isinstance(value, (int, float)):
            out.append(float(value))
        else:
            raise RewardError(f"reward {name} returned {type(value).__name__} {shorten(value, 60)} for "
                              f"{describe_row(i, prompts, completions, rows)}",
                              hint="return a list with one float (or None) per completion")
    return out


def weighted_total(values: list[list[float]], weights: list[float]) -> list[float]:
    """Σ weight·value per completion over the rewards that apply (NaN only when none does), as TRL sums."""
    totals = []
    for column in zip(*values, strict=True):
        applied = [w * v for w, v in zip(weights, column, strict=True) if not math.isnan(v)]
        totals.append(sum(applied) if applied else math.nan)
    return totals
