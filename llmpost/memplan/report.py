"""Fit / does not fit, the knobs that make a stage fit, and how a plan is shown (table or JSON).

A knob is a config change the user can pass as `--set KEY=VALUE`. Each is tried
alone; when none fits alone, the method knobs are stacked (biggest saving first),
then the batch and lengths are stepped down, so the report always ends with one
set of flags to try (or says that even that is too big).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from llmpost.errors import ConfigError
from llmpost.evaluation.generation import FIXED_BATCH
from llmpost.memplan.stages import GiB, StagePlan

SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
UNITS = {"": GiB, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
         "g": GiB, "gb": GiB, "gib": GiB, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}


def parse_size(text: str) -> float:
    """'24GB', '24G', '24GiB' or '24' (GiB) -> bytes. GB means GiB, as GPU spec sheets use it (a '24 GB' card has 24 GiB)."""
    match = SIZE_RE.match(str(text))
    unit = (match.group(2) or "").lower() if match else None
    if not match or unit not in UNITS:
        raise ConfigError([f"--gpu-memory {text!r}: not a size"], hint="write it like 24GB, 80GB or 16GiB")
    return float(match.group(1)) * UNITS[unit]


@dataclass
class Knob:
    """A change to try: `--set key=value`, and what the plan needs with it."""

    sets: dict[str, Any]
    needed: float
    fits: bool

    @property
    def flags(self) -> str:
        return " ".join(f"--set {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.sets.items())


def method_knobs(stage: str, cfg, plan: StagePlan) -> list[dict[str, Any]]:
    """Changes that keep the batch and lengths: how the model is trained and stored."""
    out: list[dict[str, Any]] = []
    fields = type(cfg).model_fields
    if "gradient_checkpointing" in fields and not cfg.gradient_checkpointing:
        out.append({"gradient_checkpointing": True})
    if plan.method != "qlora" and "qlora" in fields:
        out.append({"qlora": True})
    if plan.method == "full" and "lora" in fields:
        out.append({"lora.enabled": True})
    if plan.method == "full" and "trainer" in fields and stage in ("sft", "dpo", "kto", "rm", "grpo"):
        out.append({"trainer.optim": "paged_adamw_8bit"})
    if stage in ("dpo", "kto") and plan.method == "full" and not getattr(cfg, "precompute_ref", True):
        out.append({"precompute_ref": True})
    return out


def size_ladders(stage: str, cfg) -> list[list[dict[str, Any]]]:
    """Smaller steps, mildest first: the micro-batch (accumulation keeps the effective batch), lengths."""
    ladders: list[list[dict[str, Any]]] = []
    batch, accum = getattr(cfg, "batch_size", 1), getattr(cfg, "grad_accum", 1)
    rungs = []
    while batch > 1:
        batch, accum = batch // 2, accum * 2
        rungs.append({"batch_size": batch, "grad_accum": accum})
    ladders.append(rungs)
    settings, rungs = getattr(cfg, "eval", None), []
    eval_batch = (settings.batch_size or FIXED_BATCH) if settings is not None and settings.enabled else 0
    while eval_batch > 8:  # the held-out generation can be the peak on its own
        eval_batch //= 2
        rungs.append({"eval.batch_size": eval_batch})
    ladders.append(rungs)
    if stage == "grpo":
        completion, rungs = getattr(cfg, "max_completion_length", 0), []
        while completion > 128:
            completion //= 2
            rungs.append({"max_completion_length": completion})
        ladders.append(rungs)
    length, rungs = getattr(cfg, "max_length", 0), []
    while length > 256:
        length //= 2
        rungs.append({"max_length": length})
    ladders.append(rungs)
    return [ladder for ladder in ladders if ladder]


def with_sets(cfg, sets: dict[str, Any]):
    """A copy of `cfg` with dotted keys set, validated (None when the change is not valid for it)."""
    from pydantic import ValidationError

    data = cfg.model_dump(mode="json")
    for key, value in sets.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return type(cfg).model_validate(data)
    except ValidationError:
        return None


def suggest(stage: str, cfg, plan: StagePlan, budget: float, replan: Callable[[Any], StagePlan]) -> list[Knob]:
    """Knobs that make the stage fit in `budget` bytes: each one that fits alone, else one stacked set."""
    def needed(c) -> float:
        return replan(c).needed(budget)

    singles = []
    for sets in method_knobs(stage, cfg, plan) + [rung for ladder in size_ladders(stage, cfg) for rung in ladder]:
        changed = with_sets(cfg, sets)
        if changed is not None:
            singles.append(Knob(sets, needed(changed), False))
    for knob in singles:
        knob.fits = knob.needed <= budget
    fitting = first_per_key(k for k in singles if k.fits)
    if fitting:
        return fitting
    return [stack(stage, cfg, plan, budget, needed)]


def stack(stage: str, cfg, plan: StagePlan, budget: float, needed: Callable[[Any], float]) -> Knob:
    """Method knobs, biggest saving first, then each size ladder's mildest rung that fits (or its last)."""
    stacked: dict[str, Any] = {}
    current, now = cfg, needed(cfg)
    pending = method_knobs(stage, cfg, plan)
    while pending and now > budget:
        trials = [(needed(c), sets, c) for sets in pending if (c := with_sets(current, sets)) is not None]
        if not trials:
            break
        best_need, best_sets, best_cfg = min(trials, key=lambda t: t[0])
        pending.remove(best_sets)
        if best_need > now * 0.97:  # saves under 3%: not worth a flag
            continue
        stacked |= best_sets
        current, now = best_cfg, best_need
    for ladder in size_ladders(stage, current):
        if now <= budget:
            break
        for rung in ladder:
            trial = with_sets(current, rung)
            if trial is None:
                continue
            need = needed(trial)
            chosen = (rung, trial, need)
            if need <= budget:
                break
        stacked |= chosen[0]
        current, now = chosen[1], chosen[2]
    return Knob(stacked, now, now <= budget)


def first_per_key(knobs) -> list[Knob]:
    """One knob per set of keys: the first (mildest) fitting batch or length change."""
    seen, kept = set(), []
    for knob in knobs:
        key = tuple(sorted(knob.sets))
        if key not in seen:
            seen.add(key)
            kept.append(knob)
    return kept


def gib(value: float) -> str:
    return f"{value / GiB:.2f}"


def to_dict(plan: StagePlan, budget: float | None, knobs: list[Knob]) -> dict[str, Any]:
    """The plan as JSON-friendly data (`llmpost plan --json`)."""
    needed = plan.needed(budget)
    return {
        "stage": plan.label, "uses": plan.stage, "model": plan.model, "architecture": plan.arch.describe(),
        "method": plan.method, "device": plan.device, "peak_phase": plan.peak_phase,
        "allocated_bytes": round(plan.allocated), "needed_bytes": round(needed),
        "budget_bytes": round(budget) if budget else None, "fits": (needed <= budget) if budget else None,
        "phases": {name: round(est.total) for name, est in plan.phases.items()},
        "parts": [{"name": p.name, "bytes": round(p.bytes), "note": p.note} for p in plan.peak.parts if p.bytes],
        "notes": plan.notes,
        "knobs": [{"set": k.sets, "needed_bytes": round(k.needed), "fits": k.fits} for k in knobs],
    }


def render(console: Console, plan: StagePlan, budget: float | None, knobs: list[Knob]) -> None:
    """The plan as a table, the verdict, and the knobs to turn."""
    where = "GPU" if plan.device == "cuda" else "CPU"
    table = Table(title=f"{plan.label}: {plan.arch.describe()} — {plan.method}, {where}, peak in {plan.peak_phase}")
    table.add_column("part")
    table.add_column("GiB", justify="right")
    table.add_column("how")
    for part in plan.peak.parts:
        if part.bytes:
            table.add_row(part.name, gib(part.bytes), part.note)
    if plan.device == "cuda":
        table.add_row("[bold]allocated[/bold]", f"[bold]{gib(plan.allocated)}[/bold]", "torch.cuda.max_memory_allocated")
        extra = "+10% fragmentation, +0.75 GiB CUDA context"
        if plan.reserved_fraction:
            extra += f", +{plan.reserved_fraction:.0%} of the GPU for vLLM"
        table.add_row("[bold]needed[/bold]", f"[bold]{gib(plan.needed(budget))}[/bold]", extra)
    else:
        table.add_row("[bold]peak RSS[/bold]", f"[bold]{gib(plan.needed())}[/bold]", "resident memory of the process")
    console.print(table)
    others = ", ".join(f"{name} {gib(est.total)}" for name, est in plan.phases.items() if name != plan.peak_phase)
    if others:
        console.print(f"  other phases (GiB): {others}")
    for note in plan.notes:
        console.print(f"  [dim]assumes: {note}[/dim]")
    if budget is None:
        return
    needed = plan.needed(budget)
    if needed <= budget:
        console.print(f"  [bold green]fits[/bold green]: needs {gib(needed)} of {gib(budget)} GiB")
        return
    console.print(f"  [bold red]does not fit[/bold red]: needs {gib(needed)} of {gib(budget)} GiB")
    for knob in knobs:
        verdict = "fits" if knob.fits else "still too big"
        console.print(f"    try {knob.flags}  -> {gib(knob.needed)} GiB ({verdict})")
    if not knobs:
        console.print("    no single setting makes it fit: use a smaller model or a bigger GPU")
