"""Small helpers every training stage calls: threads, the progress/metrics callback, checkpoint/resume."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmpost.stages.context import StageContext


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Run torch ops on `n` threads (None: leave as is), unless OMP_NUM_THREADS says otherwise.

    The tiny model's matrices are too small to split across threads: on a busy CPU the
    threads mostly wait for each other, and one thread generates (grpo) or runs a PPO
    step 5-20x faster.
    """
    import torch

    previous = torch.get_num_threads()
    if n is not None and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def load_trainable(src, cfg):
    """(tokenizer, model, peft_config): what a TRL trainer stage starts from.

    An input adapter is loaded trainable and trained further in place, so it gets no new
    peft_config; a base model gets a fresh adapter from `cfg.lora` under --lora/--qlora,
    or trains all its weights.
    """
    from llmpost.models.load import load_model, load_tokenizer, lora_config

    tokenizer = load_tokenizer(src, cfg.trust_remote_code)
    model = load_model(src, qlora=cfg.qlora, trainable_adapter=bool(src.adapter_path),
                       trust_remote_code=cfg.trust_remote_code)
    peft_config = lora_config(cfg.lora) if cfg.uses_lora and not src.adapter_path else None
    return tokenizer, model, peft_config


def report_callback(ctx: StageContext, description: str):
    """A callback writing metrics.jsonl into the artifact (and to the trackers of `report_to`) and showing progress."""
    from llmpost.reporting.callbacks import ReportCallback

    return ReportCallback(ctx.metrics_log(), ctx.console, description)


def quiet(trainer):
    """Drop transformers' own stdout printer: `report_callback` already shows progress and logs."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


# A resumable checkpoint every 10% of training, but never more often than every 10 steps: a run of
# a few steps is cheaper to redo than to checkpoint. One is kept. `trainer: {save_strategy: "no"}`
# turns it off.
MIN_CHECKPOINT_INTERVAL = 10


def checkpoint_interval(steps: int) -> int:
    """Steps between resumable checkpoints in a run of `steps` steps."""
    return max(MIN_CHECKPOINT_INTERVAL, steps // 10)


def checkpoint_args(max_steps: int) -> dict:
    """Trainer arguments that keep a resumable checkpoint in the stage's work dir (pass to build_args).

    With `max_steps` unset (<= 0, training by epochs), save_steps 0.1 is a ratio of the total
    steps, as transformers reads a value below 1.
    """
    every = checkpoint_interval(max_steps) if max_steps > 0 else 0.1
    return {"save_strategy": "steps", "save_steps": every, "save_total_limit": 1}


def resume_checkpoint(ctx: StageContext) -> str | None:
    """The checkpoint an interrupted run of this exact stage left in `ctx.work_dir`, or None.

    Pass it to `trainer.train(resume_from_checkpoint=...)`: the work dir is keyed by the
    stage's fingerprint, so a checkpoint there always belongs to the same config and inputs.
    """
    found = last_checkpoint(ctx.work_dir) if ctx.work_dir is not None else None
    return str(found) if found is not None else None


def last_checkpoint(work_dir: str | Path) -> Path | None:
    """The newest complete `checkpoint-N` under `work_dir` (trainer_state.json is written last)."""
    root = Path(work_dir)
    if not root.is_dir():
        return None
    steps = sorted((int(p.name.split("-")[1]), p) for p in root.glob("checkpoint-*") if p.name.split("-")[1].isdigit())
    for _, path in reversed(steps):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue  # killed while saving: fall back to the one before
        return path
    return None
