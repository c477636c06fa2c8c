"""Resumable PPO state: everything an interrupted run needs to continue where it stopped.

Saved: the trainable weights (LoRA adapter or all weights) and the value head, the
optimizer and learning-rate schedule, the prompt order, the KL coefficient, the reward
statistics and the per-step history. Not saved: what the run rebuilds from its inputs
(the frozen base, the reference) and the sampling randomness, which every step seeds
afresh from (seed, process, step). The file is replaced atomically, so a kill while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

from pathlib import Path

import torch

from llmpost.files import replacing

STATE_FILE = "ppo-state.pt"


def save_checkpoint(trainer, directory: Path, step: int, history: list[dict]) -> None:
    """Write the trainer's state after `step` into `directory` (call on the main process only)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = trainer.accelerator.unwrap_model(trainer.model)
    state = {
        "step": step,
        "history": history,
        "trainable": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "sampler_order": list(trainer.sampler.order),
        "sampler_rng": trainer.sampler.generator.get_state(),
        "beta": trainer.kl_ctl.value,
        "moments": vars(trainer.moments) if trainer.moments is not None else None,
    }
    with replacing(directory / STATE_FILE) as tmp:
        torch.save(state, tmp)


def load_checkpoint(trainer, directory: Path | None) -> tuple[int, list[dict]]:
    """Restore the trainer from `directory` when it holds a checkpoint: (steps done, their history)."""
    path = Path(directory) / STATE_FILE if directory is not None else None
    if path is None or not path.is_file():
        return 0, []
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = trainer.accelerator.unwrap_model(trainer.model)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value.to(params[name].device))
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.sampler.order = list(state["sampler_order"])
    trainer.sampler.generator.set_state(state["sampler_rng"])
    trainer.kl_ctl.value = state["beta"]
    if trainer.moments is not None and state["moments"] is not None:
        vars(trainer.moments).update(state["moments"])
    return state["step"], list(state["history"])
