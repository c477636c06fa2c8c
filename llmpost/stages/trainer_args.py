"""Build a TRL/transformers training-arguments object from a stage config.

Three sources, lowest precedence first:

    llmpost's defaults   arguments llmpost picks but has no key for: lr_scheduler_type="cosine",
                         weight_decay=0, a checkpoint every 10% of the steps, ... (here, and each
                         stage's own, e.g. eval_strategy="no")
    `trainer:`           any argument of the class, passed through; an unknown name fails with
                         the closest valid one
    llmpost's keys       arguments set from a config key: learning_rate, num_train_epochs,
                         max_steps, per_device_train_batch_size, seed, ... and each stage's own
                         (beta, max_length, ...); report_to is always "none", as llmpost's own
                         `report_to` key feeds the trackers from metrics.jsonl's rows instead

The rule for `trainer:`: an argument that llmpost sets from one of its keys is set through
that key only, and `trainer:` naming it is an error ("trainer.learning_rate: llmpost sets
this itself; use `learning_rate` (--lr)"), raised when the config is resolved, with every
other problem. An argument llmpost only defaults has no key to clash with, so `trainer:`
may change it (`trainer: {lr_scheduler_type: linear}`, `{save_strategy: "no"}`). The
stage Config's `trainer_args_from_keys` names the first kind for that check, and
`build_args` fails if a stage sets one it does not name.

Building happens before any model is loaded, so a bad `trainer:` fails in a second.
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


def build_args(args_cls: type, cfg: TrainConfig, work_dir: Path, *, is_tiny: bool, from_keys: dict[str, Any],
               **defaults):
    """`args_cls(...)` from llmpost's defaults (shared, then the stage's `defaults`), `cfg.trainer`,
    then the arguments set from llmpost's keys (shared, then the stage's `from_keys`)."""
    keyed = {**shared_args_from_keys(cfg, is_tiny), **from_keys}
    undeclared = sorted(set(keyed) - set(cfg.trainer_args_from_keys))
    if undeclared:  # `trainer:` could then beat the key unseen: a bug in the stage, not in the user's config
        raise RuntimeError(f"{type(cfg).__module__}.Config.trainer_args_from_keys does not name {undeclared}")
    check_trainer_keys(args_cls, cfg.trainer)
    merged = {**shared_defaults(cfg, work_dir), **defaults, **cfg.trainer, **keyed}
    try:
        return args_cls(**merged)
    except (TypeError, ValueError) as exc:
        raise ConfigError([f"trainer arguments rejected by {args_cls.__name__}: {exc}"],
                          hint="fix the value under `trainer:` (or the matching llmpost key)") from None


def shared_args_from_keys(cfg: TrainConfig, is_tiny: bool) -> dict[str, Any]:
    """The arguments every stage sets from the shared keys (named in `TrainConfig.trainer_args_from_keys`)."""
    from llmpost.models.precision import use_bf16

    bf16 = use_bf16(cfg.bf16, is_tiny)
    args: dict[str, Any] = dict(
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=learning_rate(cfg, is_tiny),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of total steps in transformers 5
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bf16,
        # Always passed: TRL's configs turn checkpointing on by default (~20% slower steps), and
        # llmpost's default is off. (`gradient_checkpointing`, the old name, warns in transformers 5.)
        activation_checkpointing=cfg.gradient_checkpointing,
        # `cfg.report_to` is served by reporting/tracking.py from metrics.jsonl's rows (every stage alike);
        # the trainer's own integrations would log the same values a second time, under other names.
        report_to="none",
    )
    return args


def shared_defaults(cfg: TrainConfig, work_dir: Path) -> dict[str, Any]:
    """The arguments llmpost picks for every stage without a key of its own: `trainer:` may change them."""
    import torch

    from llmpost.stages.training import checkpoint_args

    return dict(
        output_dir=str(work_dir),
        lr_scheduler_type="cosine",
        weight_decay=0.0,
        **checkpoint_args(cfg.max_steps),  # resumable; `trainer: {save_strategy: "no"}` turns it off
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
