"""Shared fixtures: the real CLI in a subprocess, a temp store, and one trained SFT artifact.

Tests run offline against the real tiny model; nothing here mocks the thing under test.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `make test` runs one test file per core; a CLI process taking two threads on a core another
# worker is using makes both wait on each other (the tiny model's matrices are too small to split).
# Measured with the other core busy, 100 SFT steps took 72 s on one thread and 138 s (176 CPU-s,
# OpenMP threads spinning) on two.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The shared SFT is built first, while the other workers wait for it (172 s idle in one run): it takes
# every core, its idle threads sleeping instead of spinning (85 s for those 100 steps on a busy core).
WHILE_OTHERS_WAIT = {"OMP_NUM_THREADS": str(os.cpu_count() or 1), "OMP_WAIT_POLICY": "PASSIVE"}

# Steps for the shared SFT artifact: enough that the tiny model answers in the task's
# format (so preference/RL stages have something to improve), cheap enough for `make test`.
SFT_FIXTURE_STEPS = 250


# The suite's training stages answer the first 200 held-out problems unless a test says otherwise: the
# default of 1000 resolves a few points for users, and would take most of `make test`'s time budget here.
TRAINING_STAGES = {"sft", "rm", "dpo", "kto", "grpo", "ppo"}
SUITE_EVAL = ("--set", "eval.max_samples=200")


def run_cli(*args: str, store: Path | str | None = None, env: dict | None = None, timeout: float = 900,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m llmpost ARGS` as a user would; returns the completed process (never raises)."""
    args = tuple(map(str, args))
    if args and args[0] in TRAINING_STAGES and "--print-config" not in args and not any("max_samples" in a for a in args):
        args = (*args, *SUITE_EVAL)
    # pytest-xdist's workers set COLUMNS=80, which the CLI follows; a test sets a width only on purpose.
    inherited = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    full_env = {**inherited, **(env or {})}
    if store is not None:
        full_env["LLMPOST_STORE"] = str(store)
    return subprocess.run([sys.executable, "-m", "llmpost", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert exit 0, showing the command's output when it is not."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty artifact store for one test."""
    return tmp_path / "store"


SFT_SEED_ENV = "LLMPOST_TEST_SFT_SEED"


def shared_tmp(tmp_path_factory) -> Path:
    """A temp dir every test worker of this session sees (pytest-xdist gives each worker its own basetemp)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(directory: Path, build) -> Path:
    """`directory`, made by `build(directory)` unless another test worker already made it.

    `make test` runs one test file per core. A fixture that trains a model is built once,
    while the workers that need it wait, instead of once per worker.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.with_name(directory.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = directory.with_name(directory.name + ".built")
        if not built.exists():
            shutil.rmtree(directory, ignore_errors=True)
            build(directory)
            built.touch()
    return directory


def copy_tree(source: Path, target: Path) -> Path:
    """A copy of a store, or of one artifact name in it, that works where it lands (`latest` links are relative)."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    return target


@pytest.fixture(scope="session")
def sft_store(tmp_path_factory) -> Path:
    """A store holding `sft`: the tiny model after a short SFT on the built-in task (built once per session).

    Stage tests start from it by ref (`--model sft`) and write their own names next to it; each
    test worker has its own copy of the store, so their writes never meet.
    """
    def train(store: Path) -> None:
        # evaluated on the suite's 200 held-out problems: the stages that start from it reuse these answers
        ok(run_cli("sft", "--out", "sft", "--batch-size", "32", "--set", f"max_steps={SFT_FIXTURE_STEPS}",
                   "--set", "loss_data=null", store=store, env=WHILE_OTHERS_WAIT))

    seed = build_once(shared_tmp(tmp_path_factory) / "sft-seed", train)
    os.environ[SFT_SEED_ENV] = str(seed)  # for fixtures built on top of it (integration/judge_setup.py)
    return copy_tree(seed, tmp_path_factory.mktemp("sft-store"))


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """Where GGUF models (`smollm2`) are converted: once per session, shared by every test worker."""
    cache = shared_tmp(tmp_path_factory) / "llmpost-cache"
    os.environ["LLMPOST_CACHE"] = str(cache)
    return cache


QUICKSTART = Path(__file__).parents[1] / "recipes" / "quickstart.yaml"


@pytest.fixture(scope="session")
def quickstart_store(tmp_path_factory) -> Path:
    """A store holding `quickstart-sft`, the quickstart recipe's own SFT stage (slow tests, built once).

    The acceptance tests run the recipe's later stages on it with `llmpost run --only STAGE`,
    so they measure exactly what `make quickstart` runs.
    """
    root = tmp_path_factory.mktemp("quickstart-store")
    ok(run_cli("run", QUICKSTART, "--only", "sft", store=root, timeout=3600))
    return root


def eval_report(store: Path, ref: str) -> dict:
    """The eval.json of artifact `ref` in `store`."""
    from llmpost.artifacts.store import Store

    return json.loads((Store(store).resolve(ref).path / "eval.json").read_text())


def tiny_lora_artifact(out: Path, lora_settings):
    """A LoRA adapter on tiny saved at `out`, its weights moved as a trained one's would be; its ModelSource."""
    import torch

    from llmpost.models.load import add_lora, load_model, load_tokenizer, resolve_model
    from llmpost.models.save import save_model

    src = resolve_model("tiny")
    torch.manual_seed(0)
    model = add_lora(load_model(src), lora_settings)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    save_model(model, load_tokenizer(src), out, src)
    return resolve_model(str(out))
