"""The CLI surface: help with examples everywhere, version, instant start-up, doctor."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ok, run_cli


def commands() -> list[str]:
    from llmpost.cli.app import app

    return sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def test_version():
    from llmpost import __version__

    assert ok(run_cli("--version")).stdout.strip() == f"llmpost {__version__}"


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help_with_an_example(command):
    out = ok(run_cli(command, "--help")).stdout
    assert "Example" in out and "llmpost" in out


def test_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from llmpost.cli.app import app;"
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules];"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_eval_imports_no_training_library(tmp_path):
    """Loading a model and generating needs no peft, bitsandbytes or trl: ~3.5 s of imports a run saves."""
    code = ("import sys; from llmpost.cli.app import main;"
            "sys.argv = ['llmpost', 'eval', 'tiny', '--set', 'max_samples=2', '--out', 'ev']\n"
            "try: main()\nexcept SystemExit as e: assert not e.code, e.code\n"
            "heavy = [m for m in ('peft', 'bitsandbytes', 'trl') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "LLMPOST_STORE": str(tmp_path)})


def test_print_config_shows_resolved_precedence(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 7\nbatch_size: 4\nseed: 1\n")
    out = ok(run_cli("sft", "--config", cfg, "--batch-size", "16", "--set", "seed=3", "--print-config")).stdout
    assert "max_steps: 7" in out  # from the file
    assert "batch_size: 16" in out  # flag beats file
    assert "seed: 3" in out  # --set beats all


def test_doctor_reports_device_and_4bit():
    out = ok(run_cli("doctor")).stdout
    assert "torch" in out and "device" in out and "4-bit" in out


@pytest.mark.parametrize("command", ["sft", "rm", "dpo", "kto", "grpo", "ppo"])
def test_errors_name_flags_each_training_command_has(command):
    """A refused `trainer:` key points to `learning_rate` (--lr) etc.: each such flag must exist on the command."""
    import typer

    from llmpost.cli.app import app
    from llmpost.config.base import FLAGS
    from llmpost.stages import load_stage

    click_command = typer.main.get_command(app).commands[command]
    options = {name for param in click_command.params for name in [*param.opts, *param.secondary_opts]}
    config_keys = set(load_stage(command).Config.model_fields)
    named = {flag for key, flag in FLAGS.items() if key in config_keys}
    assert named and named <= options, named - options
