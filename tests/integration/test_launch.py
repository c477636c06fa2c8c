"""`--launcher`: llmpost re-running a stage under torchrun / accelerate, and its up-front checks.

The real multi-process runs here are short (2 CPU processes, DDP over gloo, two
steps); the acceptance-size runs, comparing with one process, are in test_ddp.py (slow).
"""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ok, run_cli

from llmpost.artifacts.store import Store

QUICK = ("--set", "max_steps=2", "--set", "eval.enabled=false", "--set", "loss_data=null", "--batch-size", "4")


def test_two_processes_write_one_artifact_from_rank_zero(sft_store):
    proc = ok(run_cli("dpo", "--model", "sft", "--out", "dpo-ddp", "--launcher", "torchrun", "--num-processes", "2",
                      "--set", "max_steps=2", "--batch-size", "4", "--set", "eval.max_samples=8", store=sft_store))
    (artifact,) = Store(sft_store).list("dpo-ddp")  # rank 1 trained but published nothing
    assert artifact.ref == "dpo-ddp@v1" and proc.stdout.count("artifact: dpo-ddp@v1") == 1  # rank 0 reports
    files = {str(p.relative_to(artifact.path)) for p in artifact.path.rglob("*") if p.is_file()}
    assert {"manifest.json", "config.yaml", "metrics.jsonl", "eval.json", "README.md", "model/config.json"} <= files
    assert artifact.manifest["metrics"]["steps"] == 2
    assert artifact.manifest["parents"][0]["ref"].startswith("sft@")
    assert not [p for p in (sft_store / ".tmp").iterdir() if "dpo-ddp" in p.name]  # no leftovers from either rank


def test_a_recipe_stage_with_launch_runs_under_the_launcher_and_is_reused_without(tmp_path, store):
    recipe = tmp_path / "launched.yaml"
    stage = {"uses": "sft", "max_steps": 2, "batch_size": 4, "eval": {"enabled": False}, "loss_data": None,
             "launch": {"launcher": "torchrun", "num_processes": 1}}  # the launch path, at the cost of one process
    recipe.write_text(yaml.safe_dump({"name": "demo", "stages": {"sft": stage}}))
    proc = ok(run_cli("run", recipe, store=store))
    assert "sft: 1 process(es) under torchrun" in proc.stderr
    assert [a.ref for a in Store(store).list("demo-sft")] == ["demo-sft@v1"]
    # `launch:` is not part of the fingerprint: run in this process instead, the stage is reused
    plan = ok(run_cli("run", recipe, "--dry-run", "--set", "stages.sft.launch.launcher=none", store=store)).stdout
    assert "reuse" in plan and "demo-sft@v1" in plan, plan


@pytest.mark.parametrize("command", ["sft", "dpo", "kto", "rm", "grpo", "ppo"])
def test_every_training_command_can_launch_itself(command):
    out = ok(run_cli(command, "--help")).stdout
    assert all(flag in out for flag in ("--launcher", "--num-processes", "--deepspeed", "--fsdp")), out


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
    from llmpost.pipeline.launch.engines import trainer_overrides
    from llmpost.pipeline.launch.settings import launch_settings

    zero3 = trainer_overrides(launch_settings({"launcher": "torchrun", "deepspeed": "zero3"}))["deepspeed"]
    assert zero3["zero_optimization"]["stage"] == 3
    assert zero3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]  # the artifact stays a plain HF model
    assert json.loads(json.dumps(zero3)) == zero3  # it travels in the resolved config and the manifest


def test_require_vllm_explains_the_fix():
    import importlib.util

    from llmpost.errors import ConfigError
    from llmpost.rl.vllm_check import require_vllm

    if importlib.util.find_spec("vllm") is not None:
        require_vllm()  # installed: nothing to say
        return
    with pytest.raises(ConfigError) as err:
        require_vllm("--vllm")
    assert "vLLM" in err.value.message and "pip install" in err.value.hint
