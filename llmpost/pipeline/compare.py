"""`llmpost compare A B`: two models on the same held-out items, from what their artifacts hold.

    comparison = compare_models("sft", "dpo", Store.default())
    print("\\n".join(comparison.lines()))

A and B are artifact refs (NAME, NAME@vN, a version directory) or any model ref (`tiny`,
a local model directory, a hub id). The held-out data is `data` when given, else the
data A's own held-out evaluation used (its config says which: `held_out_data()`), else
B's, else the built-in test split; `max_samples` rows of it, by default as many as that
evaluation took.

Each model's answers come from its artifact's eval_items.jsonl ("after" phase) where it
holds them, and are checked against the requested data's answers; the items it does not
hold (a model ref, other data, more rows) are generated now, greedily, with the model's
own evaluation settings (`evaluation.heldout.evaluate` with the stored answers as
`known_outputs`). Nothing is written: the artifacts stay as they are and nothing is
cached, so a model without stored items is evaluated again on every call. The figures
themselves are `evaluation/compare.py`.

An `eval` artifact stands for the model it evaluated. Reward models, judge data and run
records answer no prompts and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from llmpost.artifacts.refs import parse_ref
from llmpost.artifacts.store import Artifact, Store
from llmpost.config.base import EvalSettings, eval_budget
from llmpost.data.formats import to_prompts
from llmpost.data.load import load_rows
from llmpost.errors import ArtifactError
from llmpost.evaluation.compare import Answers, Comparison, compare_answers
from llmpost.evaluation.heldout import evaluate, prompt_id
from llmpost.evaluation.report import read_items
from llmpost.models.load import TINY
from llmpost.stages import load_stage

DEFAULT_DATA = "builtin:arith-prompts:test"
GENERATING = ("sft", "dpo", "kto", "ppo", "grpo")  # stages whose artifact is a model that answers prompts
DEFAULTS = EvalSettings()


@dataclass
class EvalSetup:
    """How a stage evaluated its model: on which data, how many rows, with what generation settings."""

    data: str | None  # None: the stage evaluated nothing
    max_samples: int = DEFAULTS.max_samples
    max_new_tokens: int | None = None  # None: the default for the model (`config.base.eval_budget`)
    batch_size: int = DEFAULTS.batch_size
    system_prompt: str | None = None  # put before every prompt (grpo's `system_prompt`)


@dataclass
class Contender:
    """One side of the comparison: the model to load and the evaluation its artifact holds, if any."""

    ref: str  # as the user wrote it
    resolved: str  # NAME@vN for an artifact, else the ref
    model: str  # the model ref to load when answers are missing
    artifact: Artifact | None = None  # holds eval_items.jsonl, when it is one
    setup: EvalSetup | None = None
    qlora: bool = False
    trust_remote_code: bool = False


def compare_models(a: str, b: str, store: Store, *, data: str | None = None, max_samples: int | None = None,
                   console: Console | None = None) -> Comparison:
    """The paired comparison of B against A on the same held-out items (module docstring)."""
    console = console or Console(stderr=True)
    first, second = contender(a, store), contender(b, store)
    defining = next((c.setup for c in (first, second) if c.setup and c.setup.data
                     and (data is None or c.setup.data == data)), None)
    data = data or (defining.data if defining else DEFAULT_DATA)
    limit = max_samples or (defining.max_samples if defining else DEFAULTS.max_samples)
    rows = to_prompts(load_rows(data, artifact_resolver=artifact_dir(store)).rows, data)[:limit]
    ids = [prompt_id(row["prompt"]) for row in rows]
    generation = defining or EvalSetup(data)
    answers = [answers_of(c, rows, ids, store, generation, console) for c in (first, second)]
    return compare_answers(*answers, order=ids, data=data)


def contender(ref: str, store: Store) -> Contender:
    """What `ref` names: an artifact with its evaluation, or a model to evaluate; a bad ref lists what exists."""
    artifact = store.try_resolve(ref)
    if artifact is None:
        if ref != TINY and parse_ref(ref) is not None and not Path(ref).exists():
            store.resolve(ref)  # a plain name that is no artifact: raises the error that lists the store's names
        return Contender(ref, ref, ref)
    stage = artifact.manifest.get("stage")
    config = artifact.manifest.get("config") or {}
    if stage == "eval":
        model = evaluated_model(artifact)
    elif stage in GENERATING:
        model = artifact.ref
    else:
        raise ArtifactError(f"{artifact.ref} is a `{stage}` artifact: it answers no prompts",
                            "compare models: sft, dpo, kto, ppo, grpo or eval artifacts, 'tiny', a model dir or a hub id")
    return Contender(ref, artifact.ref, model, artifact, eval_setup(stage, config, artifact),
                     qlora=bool(config.get("qlora")), trust_remote_code=bool(config.get("trust_remote_code")))


def evaluated_model(artifact: Artifact) -> str:
    """The model an `eval` artifact evaluated: the exact version it read, when that was an artifact."""
    model = (artifact.manifest.get("config") or {}).get("model", TINY)
    wanted = parse_ref(model)
    for parent in artifact.manifest.get("parents") or []:
        found = parse_ref(parent.get("ref", ""))
        if wanted is not None and found is not None and found.name == wanted.name:
            return parent["ref"]
    return model


def eval_setup(stage: str, config: dict, artifact: Artifact) -> EvalSetup | None:
    """The held-out evaluation a stage ran, read from its config and eval.json; None when the config no longer validates."""
    from llmpost.stages.heldout import recorded_budget

    try:
        cfg = load_stage(stage).Config.model_validate(config)
    except ValidationError:  # written by an older llmpost: its stored answers still count, its settings do not
        return None
    budget = recorded_budget(artifact)
    if stage == "eval":
        return EvalSetup(cfg.data, cfg.max_samples, budget or cfg.max_new_tokens, cfg.batch_size)
    return EvalSetup(cfg.held_out_data(), cfg.eval.max_samples, budget or cfg.eval.max_new_tokens,
                     cfg.eval.batch_size, getattr(cfg, "system_prompt", None))


def answers_of(side: Contender, rows: list[dict], ids: list[str], store: Store, generation: EvalSetup,
               console: Console) -> Answers:
    """`side`'s right/wrong per item id: its stored answers where its artifact has them, the rest generated now."""
    setup = side.setup if side.setup and side.setup.data else generation
    checked = [(key, shown(row, side.setup)) for key, row in zip(ids, rows, strict=True) if row.get("answer") is not None]
    known = {item.id: item.output for item in read_items(side.artifact.path) or []} if side.artifact else {}
    missing = sum(prompt_id(row["prompt"]) not in known for _, row in checked)
    model, tokenizer = None, None  # evaluate() generates only what `known` lacks: with nothing missing, no model
    budget = setup.max_new_tokens
    if missing:
        console.print(f"evaluating {side.resolved} on {missing} held-out items"
                      + (" its eval_items.jsonl does not hold" if side.artifact else ""))
        model, tokenizer, is_tiny = load(side, store)
        budget = eval_budget(budget, is_tiny)
    evaluation = evaluate(model, tokenizer, [row for _, row in checked], known_outputs=known,
                          max_new_tokens=budget, batch_size=setup.batch_size)
    correct = {checked[item.index][0]: bool(item.correct) for item in evaluation.items}
    return Answers(side.ref, side.resolved, correct, stored=len(checked) - missing, evaluated=missing)


def load(side: Contender, store: Store):
    """`side`'s model and tokenizer, as its stage loaded them (4-bit when it was trained so), and whether it is tiny-based."""
    from llmpost.models.load import load_model, load_tokenizer, resolve_model

    src = resolve_model(side.model, store)
    tokenizer = load_tokenizer(src, side.trust_remote_code)
    return load_model(src, qlora=side.qlora, trust_remote_code=side.trust_remote_code), tokenizer, src.is_tiny


def shown(row: dict, setup: EvalSetup | None) -> dict:
    """The row as the stage showed it to its model: its system prompt first (grpo's `prompt_rows`), if it had one."""
    system_prompt = setup.system_prompt if setup else None
    if not system_prompt or row["prompt"][0]["role"] == "system":
        return row
    return {**row, "prompt": [{"role": "system", "content": system_prompt}, *row["prompt"]]}


def artifact_dir(store: Store):
    """Data refs may name an artifact (a judge's preferences): where its directory is."""
    def resolve(ref: str) -> Path | None:
        artifact = store.try_resolve(ref)
        return artifact.path if artifact is not None else None

    return resolve
