"""Build a TRL/transformers training-arguments object from a stage config.

The shared keys (steps, batch, learning rate, precision, logging) map the same
way for every stage; `trainer:` passes anything else through. Building the
arguments happens before any model is loaded, so a typo in `trainer:` fails in
a second, with the closest valid name.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

from llmpost.config.base import TrainConfig, learning_rate
from llmpost.errors import ConfigError


def check_trainer_keys(args_cls: type, trainer: dict[str, Any]) -> None:
    """Fail on `trainer:` keys the arguments class does not have, suggesting the closest."""
    valid = [f.name for f in dataclasses.fields(args_cls)]
    problems = []
    for key in trainer:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            tip = f"; did you mean `trainer.{close[0]}`?" if close else ""
            problems.append(f"trainer.{key}: not an argument of {args_cls.__name__}{tip}")
    if problems:
        raise ConfigError(problems, hint=f"`trainer:` takes {args_cls.__name__} arguments")


def build_args(args_cls: type, cfg: TrainConfig, work_dir: Path, *, is_tiny: bool, **stage_args):
    """`args_cls(...)` from the shared keys, the stage's own `stage_args`, then `cfg.trainer`."""
    import torch

    from llmpost.stages.training import checkpoint_args

    check_trainer_keys(args_cls, cfg.trainer)
    bf16 = cfg.bf16 if cfg.bf16 is not None else bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    common: dict[str, Any] = dict(
        output_dir=str(work_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=learning_rate(cfg, is_tiny),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of total steps in transformers 5
        lr_scheduler_type="cosine",
        weight_decay=0.0,
        logging_steps=cfg.logging_steps,
        **checkpoint_args(cfg.max_steps),  # resumable; `trainer: {save_strategy: "no"}` turns it off
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bf16,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    if cfg.gradient_checkpointing:  # the old name warns in transformers 5, so pass it only when wanted
        common["activation_checkpointing"] = True
    merged = {**common, **stage_args, **cfg.trainer}
    try:
        return args_cls(**merged)
    except (TypeError, ValueError) as exc:
        raise ConfigError([f"trainer arguments rejected by {args_cls.__name__}: {exc}"],
                          hint="fix the value under `trainer:` (or the matching llmpost key)") from None
