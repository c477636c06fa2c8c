"""One module per stage. Each holds its `Config` model, `inputs(cfg)` and `run(cfg, ctx)`.

Stage modules import torch and friends only inside `run()`, so the CLI can read
their configs (for --help, --print-config and recipe validation) instantly.
Nothing imports a stage except the CLI and the pipeline.
"""

from __future__ import annotations

import importlib
from types import ModuleType

STAGES: dict[str, str] = {
    "sft": "llmpost.stages.sft",
    "eval": "llmpost.stages.eval",
    "dpo": "llmpost.stages.dpo",
    "kto": "llmpost.stages.kto",
    "rm": "llmpost.stages.rm",
    "prm": "llmpost.stages.prm",
    "judge": "llmpost.stages.judge",
    "grpo": "llmpost.stages.grpo",
    "ppo": "llmpost.stages.ppo",
}


def load_stage(name: str) -> ModuleType:
    """The stage module for `name` (sft, rm, dpo, ...)."""
    from llmpost.errors import ConfigError

    if name not in STAGES:
        raise ConfigError([f"unknown stage {name!r}"], hint="stages: " + ", ".join(STAGES))
    return importlib.import_module(STAGES[name])
