"""`llmpost ppo` end to end on the real tiny model: the toy check, artifacts, LoRA/QLoRA, errors, DDP, acceptance."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from statistics import median

import pytest
from conftest import QUICKSTART, eval_report, ok, run_cli

from llmpost.artifacts.store import Store

# What every PPO step logs (metrics.jsonl), as the issue asks.
LOGGED = {"reward_mean", "reward_std", "reward_nan_count", "kl", "beta", "entropy", "policy_loss", "value_loss", "clip_frac",
          "approx_kl", "approx_kl_max", "response_length", "time_rollout", "time_score", "time_train"}

TOY_REWARD = '''\
def has_seven(prompts, completions, **columns):
    """+1 when the response contains a 7."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [1.0 if "7" in t else 0.0 for t in texts]
'''


def metrics_of(artifact) -> list[dict]:
    return [json.loads(line) for line in (artifact.path / "metrics.jsonl").read_text().splitlines()]


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


@pytest.fixture
def toy_files(tmp_path: Path) -> tuple[Path, Path]:
    """Short prompts (cheap steps) and a reward of +1 for responses containing "7"."""
    prompts = tmp_path / "prompts.jsonl"
    words = ["hi", "go", "say", "talk", "write", "tell", "speak", "sing"]
    prompts.write_text("".join(json.dumps({"prompt": f"{words[i % 8]} {i}"}) + "\n" for i in range(64)))
    reward = tmp_path / "toy_reward.py"
    reward.write_text(TOY_REWARD)
    return prompts, reward


def test_toy_reward_raises_the_rate_of_its_token(sft_store, toy_files):
    """The issue's toy check: +1 when the response contains a given token; its rate must climb well above start.

    From the SFT model (its answers are numbers, some with a 7): the untrained tiny model's
    1,100 number tokens put a 7 in nearly every random response, leaving nothing to learn.
    At lr 1e-3 the policy moved 50-70 nats from the reference within ten steps; on one machine
    the KL penalty then taught it to answer in 3 tokens and the rate fell (0.69 -> 0.45). At
    3e-4 it stays within about 12 nats and keeps its length (0.19 -> 0.81 on seed 0, 0.42 -> 0.89 on seed 1).
    """
    _, reward = toy_files
    ok(run_cli("ppo", "--policy", "sft", "--reward", f"{reward}:has_seven", "--out", "toy",
               "--max-new-tokens", "16", "--lr", "3e-4", "--set", "max_steps=25", "--set", "eval.enabled=false",
               store=sft_store))
    art = Store(sft_store).resolve("toy")
    rows = metrics_of(art)
    assert [r["step"] for r in rows] == list(range(1, 26))  # logged every step
    for row in rows:
        assert LOGGED <= row.keys()
        assert row["response_length"] <= 16
    start = mean([r["reward_mean"] for r in rows[:3]])
    end = mean([r["reward_mean"] for r in rows[-5:]])
    assert end >= start + 0.3 and end >= 0.6, f"rate of '7': {start:.2f} at the start, {end:.2f} at the end"
    # The KL penalty keeps it bounded: the summed per-response KL swings from step to step (single steps
    # reached 45), so the bound is on the run's median.
    assert median(r["kl"] for r in rows) < 30
    assert art.manifest["metrics"]["steps"] == 25


def test_lora_ppo_from_an_sft_artifact(sft_store):
    """--lora on an SFT artifact: an adapter that plain peft loads, lineage, eval.json before/after."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ok(run_cli("ppo", "--policy", "sft", "--lora", "--reward", "exact_match", "--out", "ppo-lora",
               "--batch-size", "8", "--set", "max_steps=3", "--set", "eval.max_samples=16", store=sft_store))
    store = Store(sft_store)
    art, parent = store.resolve("ppo-lora"), store.resolve("sft")
    assert art.manifest["stage"] == "ppo" and parent.id in [p["id"] for p in art.manifest["parents"]]
    assert len(metrics_of(art)) == 3

    report = json.loads((art.path / "eval.json").read_text())
    assert report["n_eval"] == 16 and report["reference"] == "adapter-disabled"
    for key in ("exact_match_before", "exact_match", "reward_before", "reward", "kl", "kl_max"):
        assert report[key] is not None, key
    assert report["rewards_before"].keys() == {"exact_match"}
    for key in ("exact_match", "reward"):  # each change comes with its paired interval
        assert report[f"{key}_delta_ci"][0] <= report[f"{key}_delta"] <= report[f"{key}_delta_ci"][1]
    assert "learned_reward" not in report  # exact_match is a rule, not a model that could be gamed
    items = [json.loads(line) for line in (art.path / "eval_items.jsonl").read_text().splitlines()]
    assert [i["phase"] for i in items] == ["before"] * 16 + ["after"] * 16
    assert all(i["reward"] == float(i["correct"]) for i in items)  # the reward is exact match, item by item

    model_dir = art.path / "model"
    base = json.loads((model_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base) == parent.path / "model"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), model_dir)
    assert model.peft_config.keys() == {"default"}


def test_qlora_ppo_runs_on_a_4bit_base(store, toy_files):
    prompts, reward = toy_files
    ok(run_cli("ppo", "--policy", "tiny", "--qlora", "--prompts", prompts, "--reward", f"{reward}:has_seven",
               "--out", "ppo-q", "--batch-size", "8", "--max-new-tokens", "8", "--set", "max_steps=2",
               "--set", "eval.enabled=false", store=store))
    art = Store(store).resolve("ppo-q")
    assert (art.path / "model" / "adapter_config.json").is_file()
    assert len(metrics_of(art)) == 2


@pytest.mark.parametrize("args,message", [
    (["--reward", "exact_mach"], "did you mean `exact_match`"),
    (["--batch-size", "12"], "multiple of ppo.mini_batch_size"),
    (["--set", "trainer.per_device_train_batch_size=4"], "takes no `trainer:`"),
])
def test_bad_settings_exit_2_with_a_hint(store, args, message):
    proc = run_cli("ppo", *args, "--set", "max_steps=1", store=store)
    assert proc.returncode == 2, proc.stderr[-2000:]
    said = " ".join(proc.stderr.split())  # the console wraps long lines
    assert message in said and "Traceback" not in said


def test_missing_reward_model_exits_2(store):
    proc = run_cli("ppo", "--reward", "rm:no-such-rm", "--set", "max_steps=1", store=store)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no-such-rm" in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_without_vllm_says_how_to_get_it_before_loading(store):
    proc = run_cli("ppo", "--vllm", "--set", "max_steps=1", store=store, timeout=120)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "needs vLLM, which is not installed" in message and "pip install" in message and "Traceback" not in message
    assert not [p for p in Path(store).iterdir() if not p.name.startswith(".")]  # nothing published


def test_vllm_server_url_needs_server_mode(store):
    proc = run_cli("ppo", "--set", "vllm_server_url=http://localhost:8000", "--set", "max_steps=1", store=store)
    assert proc.returncode == 2 and "vllm_mode=server" in " ".join(proc.stderr.split())


@pytest.mark.slow
def test_ddp_two_cpu_processes_write_one_artifact(store, toy_files):
    """`torchrun --nproc_per_node 2 -m llmpost ppo ...`: DDP over gloo; only rank 0 writes."""
    prompts, reward = toy_files
    env = {**os.environ, "LLMPOST_STORE": str(store), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "llmpost",
           "ppo", "--prompts", str(prompts), "--reward", f"{reward}:has_seven", "--out", "ddp", "--batch-size", "8",
           "--max-new-tokens", "16", "--lr", "1e-3", "--set", "max_steps=12", "--set", "eval.enabled=false"]
    ok(subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900))
    store_ = Store(store)
    assert [a.ref for a in store_.list("ddp")] == ["ddp@v1"]
    art = store_.resolve("ddp")
    assert art.manifest["metrics"]["num_processes"] == 2
    rows = metrics_of(art)
    assert len(rows) == 12
    assert mean([r["reward_mean"] for r in rows[-4:]]) > mean([r["reward_mean"] for r in rows[:3]])


def test_ddp_processes_share_one_adaptive_beta(store, toy_files):
    """Adaptive KL under `torchrun --nproc_per_node 2`: beta follows the KL of both processes' responses.

    Each process samples its own responses, so the two measure different KLs. Were beta updated
    from each one's own KL, the two betas would drift apart (the run compares them every step and
    fails) and the logged and checkpointed beta would be rank 0's alone.
    """
    prompts, reward = toy_files
    target, horizon, coef = 1.0, 32, 0.05
    env = {**os.environ, "LLMPOST_STORE": str(store), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "llmpost",
           "ppo", "--prompts", str(prompts), "--reward", f"{reward}:has_seven", "--out", "ddp-kl", "--batch-size", "8",
           "--max-new-tokens", "8", "--lr", "1e-3", "--set", "max_steps=4", "--set", "eval.enabled=false",
           "--set", f"kl.coef={coef}", "--set", f"kl.target={target}", "--set", f"kl.horizon={horizon}"]
    ok(subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600))
    rows = metrics_of(Store(store).resolve("ddp-kl"))
    assert len(rows) == 4
    # Ziegler et al.'s update, recomputed from the logged KL (the mean over both processes' 2 x 8 responses).
    beta = coef
    for row in rows:
        error = min(max(row["kl"] / target - 1.0, -0.2), 0.2)
        beta *= 1.0 + error * 16 / horizon
        assert row["beta"] == pytest.approx(beta, rel=1e-9), rows
    assert beta != pytest.approx(coef)  # beta did move


@pytest.mark.slow
def test_acceptance_ppo_with_reward_model_raises_rm_score_and_exact_match(quickstart_store):
    """The quickstart's SFT -> rm -> ppo: held-out RM score and exact match (>= 3 points) rise, KL bounded."""
    ok(run_cli("run", QUICKSTART, "--only", "rm", "--only", "ppo", store=quickstart_store, timeout=3600))
    report = eval_report(quickstart_store, "quickstart-ppo")
    assert report["rm_score"] > report["rm_score_before"]
    assert report["exact_match"] >= report["exact_match_before"] + 0.03, textwrap.shorten(str(report), 400)
    assert report["kl_max"] < 1.0, report
