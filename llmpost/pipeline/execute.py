"""Run one stage into the artifact store: the path shared by `llmpost <stage>` and `llmpost run`.

resolve inputs -> fingerprint -> (reuse?) -> stage.run() into a temp dir ->
config.yaml, eval.json, plots, model card -> manifest written last, atomically
renamed into NAME/vN. A crash or Ctrl-C leaves no visible version and never
moves `latest`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import BaseModel
from rich.console import Console

from llmpost.artifacts.manifest import package_versions, sha256_json
from llmpost.artifacts.store import Artifact, Store
from llmpost.config.resolve import to_yaml
from llmpost.stages import load_stage
from llmpost.stages.context import StageContext

PLOTTED = ["loss", "eval_loss", "learning_rate", "reward", "rewards/accuracies", "rewards/margins",
           "kl", "objective/kl", "value_loss", "policy_loss", "reward_mean", "accuracy"]


@dataclass
class Outcome:
    artifact: Artifact
    reused: bool
    wall_time_s: float


def fingerprint_of(stage: str, cfg: BaseModel, ctx: StageContext) -> str:
    """What makes two runs the same: stage, resolved config (minus `out`), inputs' identities."""
    config = cfg.model_dump(mode="json")
    config.pop("out", None)
    return sha256_json({
        "stage": stage,
        "config": config,
        "parents": sorted(p["id"] for p in ctx.parents()),
        "datasets": sorted(d["fingerprint"] for d in ctx.dataset_records()),
        "base_model": ctx.base_model(),
    })


def prepare(stage: str, cfg: BaseModel, store: Store, console: Console | None = None) -> tuple[StageContext, str]:
    """Resolve the stage's inputs (fails fast on a missing model/data ref) and compute its fingerprint."""
    module = load_stage(stage)
    ctx = StageContext(stage=stage, name=cfg.out or stage, store=store, console=console or Console())
    wanted = module.inputs(cfg)
    for ref in wanted.get("models", []):
        ctx.model(ref)
    for ref in wanted.get("data", []):
        ctx.data(ref)
    return ctx, fingerprint_of(stage, cfg, ctx)


def execute_stage(stage: str, cfg: BaseModel, store: Store, *, console: Console | None = None,
                  reuse: bool = False) -> Outcome:
    """Run `stage` with resolved `cfg` and finalize its artifact; with `reuse`, return an identical finished one."""
    started = time.time()
    ctx, fingerprint = prepare(stage, cfg, store, console)
    if reuse:
        found = store.find_by_fingerprint(ctx.name, fingerprint)
        if found is not None:
            return Outcome(found, True, time.time() - started)
    module = load_stage(stage)
    ctx.work_dir = store.root / ".tmp" / f"work-{ctx.name}-{fingerprint[:16]}"
    with store.begin(ctx.name) as pending:
        ctx.out_dir = pending.dir
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        result = module.run(cfg, ctx)
        wall = time.time() - started
        (pending.dir / "config.yaml").write_text(to_yaml(cfg))
        if result.eval is not None:
            (pending.dir / "eval.json").write_text(json.dumps(result.eval, indent=2, default=str))
        fields = {
            "stage": stage,
            "config": cfg.model_dump(mode="json"),
            "config_sha256": sha256_json(cfg.model_dump(mode="json")),
            "parents": ctx.parents(),
            "base_model": ctx.base_model(),
            "datasets": ctx.dataset_records(),
            "seed": getattr(cfg, "seed", None),
            "versions": package_versions(),
            "device": device_description(),
            "metrics": result.metrics,
            "wall_time_s": round(wall, 2),
            "fingerprint": fingerprint,
            "started_at": started_at,
        }
        write_extras(pending.dir, fields, result)
        artifact = pending.finalize(fields)
    shutil.rmtree(ctx.work_dir, ignore_errors=True)
    return Outcome(artifact, False, wall)


def write_extras(out_dir, fields: dict, result) -> None:
    """Training-curve PNGs and the model card (README.md)."""
    from llmpost.reporting.card import model_card
    from llmpost.reporting.plots import plot_curves

    plot_curves(out_dir / "metrics.jsonl", out_dir / "plots", PLOTTED)
    card_manifest = {**fields, "ref": fields["config"].get("out") or fields["stage"]}
    (out_dir / "README.md").write_text(model_card(card_manifest, result.eval, result.card))


def device_description() -> str:
    """Where the run happened: the GPU model, or the CPU."""
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"cuda x{n} ({torch.cuda.get_device_name(0)})"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"
