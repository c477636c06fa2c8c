"""`--launcher`: llmpost re-running a stage under torchrun / accelerate, and its up-front checks.

The one real multi-process run here is short (2 CPU processes, DDP over gloo, a few
steps); the acceptance-size runs, `dpo` included, are in test_ddp.py (slow).
"""

from __future__ import annotations

import json

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store

QUICK = ("--set", "max_steps=2", "--set", "eval.enabled=false", "--set", "loss_data=null", "--batch-size", "4")


def test_two_processes_write_one_artifact_from_rank_zero(store):
    proc = ok(run_cli("sft", *QUICK, "--out", "ddp", "--launcher", "torchrun", "--num-processes", "2", store=store))
    artifacts = Store(store).list()
    assert [a.ref for a in artifacts] == ["ddp@v1"]  # rank 1 trained but published nothing
    assert proc.stdout.count("artifact: ddp@v1") == 1  # and printed nothing: rank 0 reports
    assert not [p for p in (store / ".tmp").iterdir()]  # no leftovers from either rank
    manifest = artifacts[0].manifest
    assert manifest["metrics"]["steps"] == 2 and (artifacts[0].path / "model" / "config.json").is_file()


@pytest.mark.parametrize(("flags", "message"), [
    (("--num-processes", "2"), "need a launcher"),
    (("--launcher", "mpi"), "torchrun"),
    (("--launcher", "torchrun", "--deepspeed", "zero7"), "not 'zero2', 'zero3' or an existing file"),
    (("--launcher", "torchrun", "--deepspeed", "zero2", "--fsdp"), "not both"),
])
def test_bad_launch_flags_fail_before_anything_starts(store, flags, message):
    proc = run_cli("sft", *QUICK, *flags, store=store)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not store.exists() or not Store(store).list()


def test_deepspeed_and_fsdp_say_what_they_need(store):
    import importlib.util

    import torch

    proc = run_cli("sft", *QUICK, "--launcher", "torchrun", "--deepspeed", "zero2", store=store)
    assert proc.returncode == 2
    if importlib.util.find_spec("deepspeed") is None:
        assert "needs DeepSpeed" in proc.stderr and "pip install deepspeed" in proc.stderr
    if not torch.cuda.is_available():
        proc = run_cli("sft", *QUICK, "--launcher", "accelerate", "--fsdp", store=store)
        assert proc.returncode == 2 and "needs CUDA GPUs" in proc.stderr and "DDP" in proc.stderr


def test_print_config_does_not_launch(store):
    out = ok(run_cli("sft", *QUICK, "--launcher", "torchrun", "--num-processes", "2", "--print-config",
                     store=store)).stdout
    assert "max_steps: 2" in out and not store.exists()


def test_deepspeed_presets_reach_the_trainer_arguments():
    from llmpost.launch.engines import trainer_overrides
    from llmpost.launch.settings import launch_settings

    zero3 = trainer_overrides(launch_settings({"launcher": "torchrun", "deepspeed": "zero3"}))["deepspeed"]
    assert zero3["zero_optimization"]["stage"] == 3
    assert zero3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]  # the artifact stays a plain HF model
    assert json.loads(json.dumps(zero3)) == zero3  # it travels in the resolved config and the manifest


def test_require_vllm_explains_the_fix():
    import importlib.util

    from llmpost.errors import ConfigError
    from llmpost.launch.engines import require_vllm

    if importlib.util.find_spec("vllm") is not None:
        require_vllm()  # installed: nothing to say
        return
    with pytest.raises(ConfigError) as err:
        require_vllm("--vllm")
    assert "vLLM" in err.value.message and "pip install" in err.value.hint
