"""Re-run one stage under torchrun or `accelerate launch` (`--launcher`, a recipe stage's `launch:`).

The calling process resolves the stage's config and inputs first, so a typo or a
missing dataset fails once, here, with exit 2 instead of on every rank. It writes
the resolved config to a temporary YAML file and starts

    python -m torch.distributed.run --standalone --nproc_per_node N -m llmpost STAGE --config FILE --store ROOT

(or the `accelerate launch` equivalent). The launched processes are ordinary
llmpost runs: rank 0 writes the artifact, the others train alongside it and never
touch the store (ranks.py). When they finish, `launch_stage` returns the artifact
rank 0 published, found by the run's fingerprint.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from rich.console import Console

from llmpost.config.resolve import describe_errors, to_yaml
from llmpost.errors import ConfigError, LlmpostError
from llmpost.pipeline.execute import Outcome, prepare
from llmpost.pipeline.launch.engines import check_engines, trainer_overrides
from llmpost.pipeline.launch.settings import LaunchSettings


class LaunchFailed(LlmpostError):
    """The launched processes exited with an error (they printed why). Exit 1."""

    exit_code = 1


def launch_stage(stage: str, cfg: BaseModel, store, settings: LaunchSettings, *,
                 console: Console | None = None) -> Outcome:
    """Run `stage` with resolved `cfg` on `settings.num_processes` processes; return its `Outcome`."""
    console = console or Console(stderr=True)
    cfg = with_engine(stage, cfg, settings)
    check_engines(settings)
    ctx, fingerprint = prepare(stage, cfg, store, console)  # fails fast on a bad model/data ref
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="llmpost-launch-") as tmp:
        config_file = Path(tmp) / f"{stage}.yaml"
        config_file.write_text(to_yaml(cfg))
        program = ["-m", "llmpost", stage, "--config", str(config_file), "--store", str(store.root)]
        command = launcher_command(settings, program)
        console.print(f"[bold]{stage}[/bold]: {settings.num_processes} process(es) under {settings.launcher}")
        code = subprocess.call(command, env=launch_env(settings))
    if code != 0:
        raise LaunchFailed(f"{stage} under {settings.launcher} failed (exit {code})",
                           hint="the failing rank's error is printed above; LLMPOST_DEBUG=1 shows tracebacks")
    artifact = store.find_by_fingerprint(ctx.name, fingerprint)
    if artifact is None:
        raise LaunchFailed(f"{stage} under {settings.launcher} finished but published no artifact in {store.root}")
    return Outcome(artifact=artifact, reused=False, wall_time_s=time.time() - started)


def with_engine(stage: str, cfg: BaseModel, settings: LaunchSettings) -> BaseModel:
    """`cfg` with the DeepSpeed/FSDP trainer arguments the settings ask for merged into `trainer:`."""
    overrides = trainer_overrides(settings)
    if not overrides:
        return cfg
    if "trainer" not in type(cfg).model_fields:
        raise ConfigError([f"--deepspeed/--fsdp: the {stage} stage does not train with a transformers Trainer"],
                          hint="run it with plain DDP (--launcher torchrun --num-processes N)")
    data = cfg.model_dump(mode="json")
    data["trainer"] = {**data.get("trainer", {}), **overrides}
    try:
        return type(cfg).model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(type(cfg), exc), source=f"{stage} config with --deepspeed/--fsdp",
                          hint="run this stage with plain DDP (--launcher torchrun --num-processes N)") from None


def launcher_command(settings: LaunchSettings, program: list[str]) -> list[str]:
    """The argv that starts `program` (`-m llmpost ...`) on N processes under the chosen launcher."""
    n = str(settings.num_processes)
    if settings.launcher == "torchrun":
        # --standalone: a private rendezvous on a free port, so two runs on one machine never collide
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", n,
                *settings.launcher_args, *program]
    if settings.launcher == "accelerate":
        # Several processes need accelerate's multi-process launcher (`--multi_gpu`); on a machine
        # without GPUs it runs the same DDP over gloo. Precision comes from llmpost's own bf16 setting.
        multi = ["--multi_gpu"] if settings.num_processes > 1 else []
        return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", n, "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
                *multi, *settings.launcher_args, *program]
    raise ValueError(f"no launcher command for {settings.launcher!r}")


def launch_env(settings: LaunchSettings) -> dict[str, Any]:
    """The launched processes' environment: ours, with the CPU cores shared out between them."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // settings.num_processes)))
    return env


def free_port() -> int:
    """A TCP port nothing listens on right now (for accelerate's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
