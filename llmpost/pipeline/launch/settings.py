"""`LaunchSettings`: how a stage is launched (the `--launcher` flags, a recipe stage's `launch:` block).

    launch:
      launcher: torchrun        # none | torchrun | accelerate
      num_processes: 2          # one per GPU; on CPU, DDP over gloo
      deepspeed: zero2          # zero2 | zero3 | path/to/ds_config.json   (CUDA only)
      fsdp: false               # PyTorch FSDP full sharding                 (CUDA only)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmpost.config.base import Strict
from llmpost.config.resolve import resolve

Launcher = Literal["none", "torchrun", "accelerate"]


class LaunchSettings(Strict):
    launcher: Launcher = Field("none", description="run under 'torchrun' or 'accelerate launch'; 'none' = this process")
    num_processes: int = Field(1, ge=1, description="processes to start: one per GPU; on CPU, DDP over gloo")
    deepspeed: str | None = Field(
        None, description="DeepSpeed ZeRO: 'zero2', 'zero3' or the path of a DeepSpeed JSON/YAML config (CUDA only)"
    )
    fsdp: bool = Field(False, description="shard parameters, gradients and optimizer state with PyTorch FSDP (CUDA only)")
    launcher_args: list[str] = Field(
        default_factory=list, description="extra arguments passed to the launcher as they are, e.g. ['--max_restarts', '1']"
    )

    @model_validator(mode="after")
    def consistent(self) -> LaunchSettings:
        if self.deepspeed and self.fsdp:
            raise ValueError("choose one of deepspeed and fsdp, not both")
        if self.launcher == "none" and (self.num_processes > 1 or self.deepspeed or self.fsdp or self.launcher_args):
            raise ValueError("num_processes, deepspeed, fsdp and launcher_args need a launcher: "
                             "set launcher to 'torchrun' or 'accelerate' (--launcher torchrun)")
        return self

    @property
    def active(self) -> bool:
        """True when the stage must be re-run under a launcher."""
        return self.launcher != "none"


def launch_settings(values: dict | None, source: str = "launch settings") -> LaunchSettings:
    """Validate `values` (None entries = not given) into LaunchSettings; every problem reported at once."""
    given = {key: value for key, value in (values or {}).items() if value is not None}
    return resolve(LaunchSettings, [given], source=source)
