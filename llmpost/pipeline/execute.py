"""Run one stage into the artifact store: the path shared by `llmpost <stage>` and `llmpost run`.

resolve inputs -> fingerprint -> (reuse?) -> seed -> stage.run() into a temp dir ->
config.yaml, eval.json, plots, model card -> manifest written last, atomically
renamed into NAME/vN. A crash or Ctrl-C leaves no visible version and never
moves `latest`.

Resume: the stage's scratch dir (`ctx.work_dir`, where trainers keep checkpoints)
is keyed by name + fingerprint and survives a crash, so rerunning the same stage
with the same config and inputs continues from its last checkpoint
(`stages.training.resume_checkpoint`). It is removed once the artifact is final.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console

from llmpost.artifacts.manifest import package_versions, sha256_json
from llmpost.artifacts.store import Artifact, Store
from llmpost.config.resolve import to_yaml
from llmpost.errors import ArtifactError
from llmpost.machine import device_description
from llmpost.ranks import is_main_process, rank, wait_for_all_ranks
from llmpost.stages import load_stage
from llmpost.stages.context import StageContext
from llmpost.stages.training import last_checkpoint

PLOTTED = ["loss", "eval_loss", "learning_rate", "reward", "rewards/accuracies", "rewards/margins",
           "kl", "objective/kl", "value_loss", "policy_loss", "reward_mean", "accuracy"]


@dataclass
class Outcome:
    artifact: Artifact
    reused: bool
    wall_time_s: float
    resumed_from_step: int | None = None  # set when an interrupted run was continued from a checkpoint


# Config keys (dotted paths) that name or watch a run, or set how fast it runs, without changing what it
# makes: not part of the fingerprint, so turning a tracker on, or sizing the held-out generation's batch to
# the machine, neither reruns a stage a recipe could reuse nor loses an interrupted run's checkpoints.
# (Greedy answers do not depend on the batch: tests/integration/test_generation.py checks it. PPO's and
# DPO's replayed frozen layers give the full forward's results: tests/unit/test_trunk.py; GRPO's forward
# passes give the one pass's log-probabilities to float rounding: tests/unit/test_grpo_trainer.py.)
NOT_FINGERPRINTED = ("out", "report_to", "eval.batch_size", "ppo.reuse_frozen_layers", "reuse_frozen_layers",
                     "forward_batch_size")


def fingerprinted(key: str) -> bool:
    """Whether the dotted config key `key` counts in the fingerprint."""
    return not any(key == path or key.startswith(f"{path}.") for path in NOT_FINGERPRINTED)


def fingerprint_of(stage: str, cfg: BaseModel, ctx: StageContext) -> str:
    """What makes two runs the same: stage, resolved config (minus `NOT_FINGERPRINTED`), inputs' identities."""
    config = cfg.model_dump(mode="json")
    for path in NOT_FINGERPRINTED:
        *parents, key = path.split(".")
        section = config
        for name in parents:
            section = section.get(name) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.pop(key, None)
    return sha256_json({
        "stage": stage,
        "config": config,
        "parents": sorted(p["id"] for p in ctx.parents()),
        "datasets": sorted(d["fingerprint"] for d in ctx.dataset_records()),
        # the base's identity, not where it sits on this machine
        "base_model": {k: v for k, v in (ctx.base_model() or {}).items() if k != "path"},
    })


def prepare(stage: str, cfg: BaseModel, store: Store, console: Console | None = None) -> tuple[StageContext, str]:
    """Resolve the stage's inputs (fails fast on a missing model/data ref or tracker) and compute its fingerprint."""
    require_trackers(cfg)
    module = load_stage(stage)
    ctx = StageContext(stage=stage, name=cfg.out or stage, store=store, console=console or Console())
    wanted = module.inputs(cfg)
    for ref in wanted.get("models", []):
        ctx.model(ref)
    for ref in wanted.get("data", []):
        ctx.data(ref)
    return ctx, fingerprint_of(stage, cfg, ctx)


def work_dir_for(store: Store, name: str, fingerprint: str) -> Path:
    """The stage's scratch dir: the same for the same name, config and inputs, so a rerun finds its checkpoints."""
    return store.root / ".tmp" / f"work-{name}-{fingerprint[:16]}"


def execute_stage(stage: str, cfg: BaseModel, store: Store, *, console: Console | None = None,
                  prepared: tuple[StageContext, str] | None = None) -> Outcome:
    """Run `stage` with resolved `cfg` and finalize its artifact (whether to reuse one is the caller's choice).

    `prepared` is what `prepare()` returned for this very config, when the caller already has it.
    An interrupted earlier run of the same stage is continued from its last checkpoint.
    """
    started = time.time()
    ctx, fingerprint = prepared or prepare(stage, cfg, store, console)
    module = load_stage(stage)
    ctx.work_dir = work_dir_for(store, ctx.name, fingerprint)
    if not ctx.is_main_process:  # under torchrun/accelerate: train alongside rank 0, never write to the store
        train_on_other_rank(module, cfg, ctx)
        return Outcome(store.find_by_fingerprint(ctx.name, fingerprint), False, time.time() - started)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    work_lock = lock_work_dir(ctx.work_dir, ctx.name)
    try:
        resumed = checkpoint_progress(ctx.work_dir)
        if resumed is not None:
            ctx.console.print(f"[bold]{ctx.name}[/bold]: resuming an interrupted run from step {resumed.step} "
                              f"({resumed.path.name})")
        with store.begin(ctx.name) as pending:
            ctx.out_dir = pending.dir
            started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            ctx.tracker = open_tracker(stage, cfg, ctx, pending, fingerprint)
            with ctx.tracker:  # closed (files flushed) before the artifact is published; marked failed on an error
                if resumed is not None:  # the steps before the checkpoint, which prepend_metrics puts in front
                    for row in resumed.logs:
                        if "step" in row:
                            ctx.tracker.log(row, row["step"])
                result = run_seeded(module, cfg, ctx)
            ctx.tracker = None
            wall = time.time() - started
            if resumed is not None:
                prepend_metrics(pending.dir / "metrics.jsonl", resumed.logs)
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
                "resumed_from_step": resumed.step if resumed is not None else None,
            }
            write_extras(pending.dir, fields, result)
            artifact = pending.finalize(fields)
    finally:
        if work_lock is not None:
            os.close(work_lock)
    shutil.rmtree(ctx.work_dir, ignore_errors=True)  # finished: the checkpoints are no longer needed
    wait_for_all_ranks()  # the other ranks return this artifact once it is published
    return Outcome(artifact, False, wall, resumed.step if resumed is not None else None)


def require_trackers(cfg: BaseModel) -> None:
    """A tracker in `report_to` whose package is missing fails now, before any model loads."""
    from llmpost.reporting.tracking import require

    require(getattr(cfg, "report_to", []))


def open_tracker(stage: str, cfg: BaseModel, ctx: StageContext, pending, fingerprint: str):
    """The experiment trackers of `cfg.report_to` (reporting/tracking.py), with one run named after the artifact
    being written (NAME/vN); its config holds the artifact's id, ref, stage and fingerprint and the stage's config."""
    from llmpost.reporting.tracking import TrackedRun, Tracker

    version = pending.expected_version()
    run = TrackedRun(name=f"{ctx.name}/v{version}", dir=pending.dir, config={
        "artifact_id": pending.id, "artifact_ref": f"{ctx.name}@v{version}", "stage": stage,
        "fingerprint": fingerprint, **cfg.model_dump(mode="json")})
    return Tracker.open(getattr(cfg, "report_to", []), run,
                        warn=lambda text: ctx.console.print(text, markup=False, style="yellow"))


def lock_work_dir(work_dir: Path, name: str) -> int | None:
    """Hold the work dir for this run: one run of a stage per fingerprint at a time, and `gc` keeps its checkpoints.

    In a launched multi-process run only rank 0 holds it; the other ranks share its checkpoints.
    """
    if not is_main_process():
        return None
    fd = os.open(work_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ArtifactError(f"`{name}` with this exact config and inputs is being written by another process",
                            "wait for it to finish; running again then reuses its artifact") from None
    return fd


@dataclass
class Checkpoint:
    path: Path
    step: int
    logs: list[dict]  # the training logs up to the checkpoint (its trainer_state.json log_history)


def checkpoint_progress(work_dir: Path) -> Checkpoint | None:
    """The checkpoint an interrupted run left in `work_dir`, with the logs it had written so far."""
    path = last_checkpoint(work_dir)
    if path is None:
        return None
    state = json.loads((path / "trainer_state.json").read_text())
    return Checkpoint(path, int(state.get("global_step", 0)), list(state.get("log_history") or []))


def prepend_metrics(metrics_path: Path, earlier: list[dict]) -> None:
    """Put the interrupted run's logs in front of the resumed run's, so metrics.jsonl covers every step."""
    from llmpost.reporting.metrics import read_metrics

    later = read_metrics(metrics_path)
    first_new = min((row["step"] for row in later), default=None)
    kept = [row for row in earlier if "step" in row and (first_new is None or row["step"] < first_new)]
    if not kept:
        return
    rows = [{k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)} for row in kept]
    metrics_path.write_text("".join(json.dumps(row) + "\n" for row in rows + later))


def write_extras(out_dir, fields: dict, result) -> None:
    """Training-curve PNGs and the model card (README.md)."""
    from llmpost.reporting.card import model_card
    from llmpost.reporting.plots import plot_curves

    plot_curves(out_dir / "metrics.jsonl", out_dir / "plots", PLOTTED)
    card_manifest = {**fields, "ref": fields["config"].get("out") or fields["stage"]}
    (out_dir / "README.md").write_text(model_card(card_manifest, result.eval, result.card))


def train_on_other_rank(module, cfg, ctx) -> None:
    """Run `module.run(cfg, ctx)` on a non-main rank: same training, nothing written to the store.

    The artifact directory is a throwaway temp dir; the work dir (checkpoints) stays
    the one rank 0 uses, because transformers expects every rank to checkpoint and
    resume from the same place. Returns once rank 0 has published its artifact.
    """
    with tempfile.TemporaryDirectory(prefix=f"llmpost-rank{rank()}-") as tmp:
        ctx.out_dir = Path(tmp)
        run_seeded(module, cfg, ctx)
    wait_for_all_ranks()


def run_seeded(module, cfg, ctx):
    """`module.run(cfg, ctx)` after seeding python, numpy and torch with the config's seed: every
    stage starts from the same random state for the same config, in every process of a launched run."""
    from llmpost.seeding import set_seed

    set_seed(cfg.seed)
    return module.run(cfg, ctx)
