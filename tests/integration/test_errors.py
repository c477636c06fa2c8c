"""Bad input exits 2 with a message that says how to fix it, and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import run_cli


def fails_with(proc, *needles: str, code: int = 2) -> str:
    text = proc.stderr + proc.stdout
    assert proc.returncode == code, f"exit {proc.returncode}: {text[-2000:]}"
    assert "Traceback" not in text, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text[-2000:]}"
    return text


def test_malformed_yaml_names_the_line(store, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("max_steps: 3\nlora:\n  r: 4\n    alpha: 8\n")
    fails_with(run_cli("sft", "--config", cfg, store=store), "malformed YAML", "line", "hint")
    assert not store.exists() or not any(store.glob("*/v*"))


def test_unknown_keys_are_all_listed_with_suggestions(store, tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("learning_rat: 0.1\nlora:\n  rank: 4\n")
    text = fails_with(run_cli("sft", "--config", cfg, "--set", "max_stpes=3", store=store),
                      "learning_rat", "did you mean `learning_rate`", "max_stpes", "did you mean `max_steps`", "lora.rank")
    assert "3 problems" in text


def test_bad_value_type_names_the_key(store):
    fails_with(run_cli("sft", "--set", "max_steps=lots", store=store), "max_steps", "integer")


@pytest.mark.parametrize("command", ["sft", "dpo", "kto", "rm", "prm"])
def test_row_in_wrong_shape_names_row_and_columns_before_the_trainer_loads(command, store, tmp_path):
    """Every training stage reads its rows first: a bad file fails in seconds, not after TRL's import."""
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"question": "hi", "reply": "yo"}) + "\n")
    code = ("import sys; from llmpost.cli.app import main;"
            f"sys.argv = ['llmpost', {command!r}, '--data', {str(data)!r}, '--set', 'max_steps=1']\n"
            "try: main()\nexcept SystemExit as e: print('exit', e.code)\n"
            "print('trl imported' if 'trl' in sys.modules else 'trl not imported')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "LLMPOST_STORE": str(store)})
    text = fails_with(proc, "row 1", "question", "reply", code=0)
    assert "exit 2" in proc.stdout and "trl not imported" in proc.stdout, text[-2000:]
    assert not store.exists() or not any(store.glob("*/v*"))


def test_prompts_that_fill_max_length_leave_nothing_to_train_on(store, tmp_path):
    data = tmp_path / "long.jsonl"
    row = {"messages": [{"role": "user", "content": " ".join(["1+1"] * 80)}, {"role": "assistant", "content": "2"}]}
    data.write_text((json.dumps(row) + "\n") * 4)
    fails_with(run_cli("sft", "--data", data, "--set", "max_length=64", "--set", "max_steps=1",
                       "--set", "eval.enabled=false", store=store),
               "no row has a completion token within max_length=64", "--set max_length=N")
    assert not any(store.glob("*/v*")), "nothing published"


def test_unknown_model_ref_has_a_hint(store):
    fails_with(run_cli("sft", "--model", "no-such-model", "--set", "max_steps=1", store=store),
               "no-such-model", "hint")


def test_missing_artifact_version_lists_what_exists(sft_store):
    fails_with(run_cli("sft", "--model", "sft@v9", "--set", "max_steps=1", store=sft_store), "v9", "v1", "llmpost ls")


def test_empty_dataset(store, tmp_path):
    data = tmp_path / "empty.jsonl"
    data.write_text("")
    fails_with(run_cli("sft", "--data", data, "--set", "max_steps=1", store=store), "no rows")


def test_bad_trainer_passthrough_key_fails_before_loading(store):
    fails_with(run_cli("sft", "--set", "trainer.lr_schedular_type=linear", "--set", "max_steps=1", store=store),
               "trainer.lr_schedular_type", "lr_scheduler_type")


def test_debug_env_shows_the_traceback(store):
    proc = run_cli("sft", "--model", "no-such-model", store=store, env={"LLMPOST_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_file_that_is_not_utf8_names_the_line_and_writes_nothing(store, tmp_path):
    data = tmp_path / "latin.jsonl"
    data.write_bytes(json.dumps({"prompt": "caf\u00e9?", "completion": "oui"}, ensure_ascii=False).encode("latin-1"))
    fails_with(run_cli("sft", "--data", data, "--set", "max_steps=1", store=store),
               "latin.jsonl: line 1 is not UTF-8", "iconv")
    assert not store.exists() or not any(store.glob("*/v*"))


def test_chat_row_with_unknown_role_names_row_and_roles(store, tmp_path):
    data = tmp_path / "chat.jsonl"
    good = {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]}
    bad = {"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    fails_with(run_cli("sft", "--data", data, "--set", "max_steps=1", store=store),
               "chat.jsonl: row 2", "'wizard'", "accepted roles: system, user, assistant")
    assert not store.exists() or not any(store.glob("*/v*"))


def test_trainer_cannot_override_what_an_llmpost_key_sets(store):
    """`--set trainer.learning_rate` would beat `--lr` unseen and the manifest would record --lr: refused, all at once."""
    text = fails_with(run_cli("sft", "--lr", "1e-3", "--set", "trainer.learning_rate=0.1", "--set", "trainer.seed=3",
                              "--set", "trainer.save_strategy=no", "--set", "max_steps=1", store=store),
                      "trainer.learning_rate: llmpost sets this itself; use `learning_rate` (--lr)",
                      "trainer.seed: llmpost sets this itself; use `seed` (--seed)", "2 problems")
    assert "save_strategy" not in text  # llmpost only defaults it: `trainer:` may change it
    assert not store.exists()


def test_trainer_cannot_override_a_stage_key(store):
    fails_with(run_cli("dpo", "--set", "trainer.beta=0.5", "--set", "trainer.loss_type=ipo", store=store),
               "trainer.beta: llmpost sets this itself; use `beta` (--beta)",
               "trainer.loss_type: llmpost sets this itself; use `loss` (--loss)")
    assert not store.exists()
