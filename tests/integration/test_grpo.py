"""`llmpost grpo` end to end on the real tiny model: artifacts, reward logging, R1-Zero, errors."""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap

import pytest
import yaml
from conftest import eval_report, ok, run_cli
from vllm_stand_in import vllm_distribution

from llmpost.artifacts.store import Store

# The R1-Zero example of the README: GRPO straight from the base model, rewarded for the
# think/answer format and for the right answer. The system prompt is short because the tiny
# model's context is 512 characters; a real model takes DeepSeek-R1-Zero's full prompt.
R1_ZERO_YAML = """\
model: tiny
data: builtin:arith-prompts
system_prompt: "Think inside <think></think>, then give only the number inside <answer></answer>."
rewards:
  - exact_match
  - format=0.5
num_generations: 8
max_completion_length: 64
temperature: 1.0
beta: 0.0
"""

SMALL = ["--set", "eval.max_samples=16", "--batch-size", "16", "--num-generations", "4", "--set", "logging_steps=1"]


def metrics_of(artifact) -> list[dict]:
    return [json.loads(line) for line in (artifact.path / "metrics.jsonl").read_text().splitlines()]


def untrained_reward_model(store_path, name: str) -> None:
    """A reward-model artifact that was never trained: a learned reward with no idea what is correct."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    from llmpost.models.tiny import tiny_path

    torch.manual_seed(0)
    with Store(store_path).begin(name) as pending:
        LlamaForSequenceClassification(AutoConfig.from_pretrained(tiny_path(), num_labels=1)).save_pretrained(
            pending.dir / "model")
        AutoTokenizer.from_pretrained(tiny_path()).save_pretrained(pending.dir / "model")
        pending.finalize({"stage": "rm", "base_model": {"id": "tiny"}})


def test_grpo_after_sft_logs_each_reward_and_reports_before_after(sft_store):
    untrained_reward_model(sft_store, "toy-rm")
    ok(run_cli("grpo", "--model", "sft", "--out", "grpo", "--reward", "exact_match", "--reward", "format=0.1",
               "--reward", "rm:toy-rm=0.1", "--set", "max_steps=3", *SMALL, store=sft_store))
    store = Store(sft_store)
    art, parent = store.resolve("grpo"), store.resolve("sft")
    assert {"manifest.json", "config.yaml", "metrics.jsonl", "eval.json", "eval_items.jsonl", "README.md",
            "model"} <= {p.name for p in art.path.iterdir()}
    assert art.manifest["stage"] == "grpo" and art.manifest["parents"][0]["id"] == parent.id

    steps = [row for row in metrics_of(art) if "reward" in row]
    assert len(steps) == 3
    for row in steps:  # each reward's mean, the weighted total, and where the time went
        assert {"rewards/exact_match/mean", "rewards/format/mean", "rewards/rm:toy-rm/mean", "reward", "step_time",
                "time/generation", "time/reward"} <= row.keys()
        expected = (row["rewards/exact_match/mean"] + 0.1 * row["rewards/format/mean"]
                    + 0.1 * row["rewards/rm:toy-rm/mean"])
        assert row["reward"] == pytest.approx(expected, abs=1e-5)

    report = json.loads((art.path / "eval.json").read_text())
    names = ["exact_match", "format", "rm:toy-rm"]
    assert report["n_eval"] == 16 and [r["name"] for r in report["rewards"]] == names
    for when in ("before", "after"):
        rewards = report[f"rewards_{when}"]
        assert list(rewards) == names
        total = report["reward_before" if when == "before" else "reward"]
        assert total == pytest.approx(rewards["exact_match"] + 0.1 * rewards["format"] + 0.1 * rewards["rm:toy-rm"])
    # exact_match the reward and exact match the report are the same judgement of the same answers
    assert report["exact_match_before"] == pytest.approx(report["rewards_before"]["exact_match"])
    assert art.manifest["metrics"]["steps"] == 3

    # the change in reward and in exact match, each with its paired interval
    for key in ("exact_match", "reward"):
        low, high = report[f"{key}_delta_ci"]
        assert low <= report[f"{key}_delta"] <= high
    # the learned reward (the reward model, not the rules) checked against correctness, item by item
    learned = report["learned_reward"]
    assert learned["rewards"] == ["rm:toy-rm"] and learned["n"] == 16
    assert learned["reward_up_correct_down"] <= learned["became_wrong"] <= 16
    items = [json.loads(line) for line in (art.path / "eval_items.jsonl").read_text().splitlines()]
    after = [i for i in items if i["phase"] == "after"]
    assert len(items) == 32 and len(after) == 16
    assert all(i["rewards"]["exact_match"] == float(i["correct"]) for i in items)
    assert sum(i["rewards"]["rm:toy-rm"] for i in after) / 16 == pytest.approx(report["rewards_after"]["rm:toy-rm"])


def test_grpo_model_loads_with_plain_transformers(sft_store):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if Store(sft_store).try_resolve("grpo") is None:
        ok(run_cli("grpo", "--model", "sft", "--out", "grpo", "--set", "max_steps=1", "--set", "eval.enabled=false",
                   *SMALL[2:], store=sft_store))
    model_dir = Store(sft_store).resolve("grpo").model_dir
    model, tok = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Ann has 3 pens and gets 4 more. How many pens?"}],
                                     tokenize=False, add_generation_prompt=True)
    out = model.generate(**tok(prompt, return_tensors="pt", add_special_tokens=False), max_new_tokens=16,
                         do_sample=False)
    assert "####" in tok.decode(out[0], skip_special_tokens=True)


def test_r1_zero_config_runs_from_the_base_model(store, tmp_path):
    config = tmp_path / "r1-zero.yaml"
    config.write_text(R1_ZERO_YAML)
    ok(run_cli("grpo", "--config", config, "--out", "r1-zero", "--set", "max_steps=2", *SMALL, store=store))
    art = Store(store).resolve("r1-zero")
    assert art.manifest["base_model"]["id"] == "tiny" and art.manifest["parents"] == []
    saved = yaml.safe_load((art.path / "config.yaml").read_text())
    assert saved["system_prompt"].startswith("Think inside <think>") and saved["rewards"] == ["exact_match", "format=0.5"]
    steps = [row for row in metrics_of(art) if "reward" in row]
    assert steps and all({"rewards/exact_match/mean", "rewards/format/mean"} <= row.keys() for row in steps)
    report = json.loads((art.path / "eval.json").read_text())
    assert set(report["rewards_after"]) == {"exact_match", "format"}


def test_code_exec_reward_trains_on_rows_with_tests(store, tmp_path):
    rows = [{"prompt": f"Write a Python function add{i}(a, b) returning a + {i}.",
             "tests": [f"assert add{i}(1, 2) == {3 + i}"]} for i in range(8)]
    data = tmp_path / "code.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ok(run_cli("grpo", "--prompts", data, "--out", "coder", "--reward", "code_exec:cpu=1,wall=3",
               "--reward", "length:max=40=0.1", "--set", "max_steps=2", "--set", f"eval.data={data}",
               "--set", "max_completion_length=24", *SMALL, store=store))
    art = Store(store).resolve("coder")
    steps = [row for row in metrics_of(art) if "reward" in row]
    assert all(0.0 <= row["rewards/code_exec/mean"] <= 1.0 for row in steps)
    assert json.loads((art.path / "eval.json").read_text())["rewards_after"]["code_exec"] == 0.0  # random model


def test_a_reward_that_raises_fails_the_run_naming_it_and_the_row(store, tmp_path):
    reward_file = tmp_path / "my_rewards.py"
    reward_file.write_text(textwrap.dedent("""
        def strict(prompts, completions, answer, **kwargs):
            raise ValueError("cannot score " + answer[0])
    """))
    proc = run_cli("grpo", "--out", "broken", "--reward", "exact_match", "--reward", f"{reward_file}:strict",
                   "--set", "max_steps=1", "--set", "eval.enabled=false", *SMALL[2:], store=store)
    assert proc.returncode == 1, proc.stderr
    message = " ".join(proc.stderr.split())  # the console wraps long lines
    assert "my_rewards.py:strict raised ValueError: cannot score" in message
    assert "on data row" in message and "prompt '" in message and "hint:" in message
    assert "Traceback" not in message
    assert Store(store).try_resolve("broken") is None


def test_config_mistakes_fail_before_training(store, tmp_path):
    def fails(*args) -> str:
        proc = run_cli("grpo", *args, store=store)
        assert proc.returncode == 2, proc.stderr
        return " ".join(proc.stderr.split())

    assert "did you mean `exact_match`" in fails("--reward", "exact_mach")
    assert "multiple of num_generations" in fails("--num-generations", "5")

    no_answers = tmp_path / "open.jsonl"
    no_answers.write_text(json.dumps({"prompt": "Tell me a story."}) + "\n")
    assert "exact_match needs a 'answer' column" in fails("--prompts", no_answers, "--reward", "exact_match")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_without_vllm_says_how_to_get_it(store):
    proc = run_cli("grpo", "--vllm", "--set", "max_steps=1", store=store)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "needs vLLM, which is not installed" in message and "pip install" in message


@pytest.mark.slow
def test_grpo_after_the_quickstart_sft_raises_exact_match_by_five_points(quickstart_store):
    """The acceptance run: the quickstart's SFT, then `llmpost grpo` with its defaults (exact_match) for 120 steps."""
    ok(run_cli("grpo", "--model", "quickstart-sft", "--out", "grpo", "--set", "max_steps=120",
               store=quickstart_store, timeout=3600))
    art = Store(quickstart_store).resolve("grpo")
    report = eval_report(quickstart_store, "grpo")
    assert report["exact_match"] - report["exact_match_before"] >= 0.05, report
    assert art.manifest["wall_time_s"] < 600


def test_qlora_vllm_with_a_vllm_that_dropped_bitsandbytes_says_which_to_install(store, tmp_path):
    """vLLM 0.28 removed bitsandbytes, which a 4-bit base needs: exit 2 before loading, naming the version to install."""
    site = vllm_distribution(tmp_path / "site", "0.30.0")
    proc = run_cli("grpo", "--qlora", "--vllm", "--set", "max_steps=1", store=store,
                   env={"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))})
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "vLLM 0.30.0 cannot load a 4-bit base" in message and "pip install -c constraints.txt 'vllm==0.27.1'" in message
    assert "Traceback" not in message
