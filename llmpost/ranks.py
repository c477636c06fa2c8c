"""Which process this is in a multi-process run, read from the launcher's environment.

torchrun and `accelerate launch` set RANK/WORLD_SIZE; MPI launchers set their own
names. Only the main process (global rank 0) writes the artifact: the other ranks
train alongside it (DDP needs every rank for every step) into a throwaway
directory, wait for rank 0 to publish, then return rank 0's artifact
(`pipeline/execute.py`). Stages ask `is_main_process()` before they write; the
RL trainers average across ranks themselves.
"""

from __future__ import annotations

import os

RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")
WORLD_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    return default


def rank() -> int:
    """This process's global rank (0 when not launched)."""
    return _first_int(RANK_VARS, 0)


def world_size() -> int:
    """How many processes take part (1 when not launched)."""
    return _first_int(WORLD_VARS, 1)


def is_main_process() -> bool:
    """True on global rank 0: the only process that writes to the artifact store."""
    return rank() == 0


def wait_for_all_ranks() -> None:
    """A barrier across every process of a launched run (no-op when there is only one)."""
    if world_size() <= 1:
        return
    from accelerate import PartialState

    # The trainer has normally set the process group up already; PartialState() reuses it.
    PartialState().wait_for_everyone()
