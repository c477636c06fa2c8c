"""Policy and reference on one base: the reference starts equal to the policy and never moves.

Covers the three ways a reference is kept (rl/policy.py): a frozen copy (full
fine-tuning), the base with the new adapter disabled (--lora), and a second, frozen
load of an input adapter (a LoRA artifact as the policy). Also: PPO's first pass has
a probability ratio of exactly 1, and the saved policy reloads with plain peft.
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_lora_artifact

from llmpost.config.base import LoraSettings
from llmpost.rl.policy import load_policy, save_policy, sequence_logprobs
from llmpost.rl.rollout import sample_rollout
from llmpost.rl.settings import KLSettings, PPOSettings, RolloutSettings

PROMPTS = ["<|user|>hi<|end|><|assistant|>", "<|user|>add 2 and 3<|end|><|assistant|>"]


def as_batch(r) -> dict:
    return {"input_ids": r.input_ids, "attention_mask": r.attention_mask, "position_ids": r.position_ids,
            "response_ids": r.response_ids}


@pytest.fixture(scope="module")
def tiny_src():
    from llmpost.models.load import load_tokenizer, resolve_model

    src = resolve_model("tiny")
    return src, load_tokenizer(src)


@pytest.fixture(scope="module")
def adapter_src(tmp_path_factory):
    """A LoRA adapter on tiny whose weights really change the model (as a trained one would)."""
    return tiny_lora_artifact(tmp_path_factory.mktemp("adapter") / "model", LoraSettings(r=4))


def one_sgd_step(policy, batch) -> None:
    """Push the policy's log-probs of the batch up, the way a PPO update would move it."""
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.5)
    (-sequence_logprobs(policy, batch, 1.0).mean()).backward()
    optimizer.step()
    optimizer.zero_grad()


@pytest.mark.parametrize("case", ["frozen-copy", "adapter-disabled", "reference-adapter"])
def test_reference_equals_the_start_and_stays_frozen(case, tiny_src, adapter_src):
    src, tok = tiny_src
    source = adapter_src if case == "reference-adapter" else src
    torch.manual_seed(0)
    policy, reference = load_policy(source, qlora=False, lora=LoraSettings(r=4) if case == "adapter-disabled" else None)
    assert reference.kind == case
    rollout = sample_rollout(policy, tok, PROMPTS, temperature=1.0, top_p=1.0, max_new_tokens=8)
    batch = as_batch(rollout)
    with torch.no_grad():
        start = sequence_logprobs(policy, batch, 1.0)
    ref_before = reference.logprobs(batch, 1.0)
    assert torch.allclose(start, ref_before, atol=1e-5)

    one_sgd_step(policy, batch)
    with torch.no_grad():
        moved = sequence_logprobs(policy, batch, 1.0)
    ref_after = reference.logprobs(batch, 1.0)
    assert (moved - start).abs().max() > 1e-3  # the policy learned
    assert torch.allclose(ref_after, ref_before, atol=1e-6)  # the reference did not
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and not any("reference" in n for n in trainable)  # switching back left it frozen


def test_an_input_adapter_is_saved_as_one_adapter_that_plain_peft_loads(adapter_src, tiny_src, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    src, tok = tiny_src
    policy, _ = load_policy(adapter_src, qlora=False, lora=None)
    rollout = sample_rollout(policy, tok, PROMPTS, temperature=1.0, top_p=1.0, max_new_tokens=8)
    one_sgd_step(policy, as_batch(rollout))
    with torch.no_grad():
        trained = sequence_logprobs(policy, as_batch(rollout), 1.0)
    save_policy(policy, tok, tmp_path / "model", adapter_src)
    assert (tmp_path / "model" / "adapter_config.json").is_file()
    assert not (tmp_path / "model" / "reference").exists()
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(src.path), tmp_path / "model")
    with torch.no_grad():
        again = sequence_logprobs(reloaded, as_batch(rollout), 1.0)
    assert torch.allclose(trained, again, atol=1e-5)


def test_first_ppo_pass_has_ratio_one_and_zero_kl(tiny_src):
    from llmpost.rl.trainer import PPOTrainer

    src, tok = tiny_src
    torch.manual_seed(0)
    policy, reference = load_policy(src, qlora=False, lora=None)
    rows = [{"prompt": [{"role": "user", "content": f"say {i}"}]} for i in range(8)]

    def reward(prompts, completions, rows):
        values = [float(len(c) % 3) for c in completions]
        return values, {"len_mod_3": values}

    trainer = PPOTrainer(policy, reference, tok, reward, rows, rollout=RolloutSettings(max_new_tokens=8),
                         kl=KLSettings(), ppo=PPOSettings(mini_batch_size=4), batch_size=8, steps=1)
    texts = [f"<|user|>say {i}<|end|><|assistant|>" for i in range(8)]
    rollout = sample_rollout(trainer.policy, tok, texts, temperature=1.0, top_p=1.0, max_new_tokens=8)
    scores, _ = trainer.score(rows, rollout)
    batch, stats = trainer.experience(rollout, scores)
    assert stats["kl"] == pytest.approx(0.0, abs=1e-6)
    _, loss_stats = trainer.loss({k: v[:4] for k, v in batch.items()})
    assert loss_stats["approx_kl"].item() == pytest.approx(0.0, abs=1e-7)
    assert loss_stats["clip_frac"].item() == 0.0
    # Prompt and padding positions never carry advantages or returns.
    assert (batch["advantages"][batch["response_mask"] == 0] == 0).all()
    step_stats = trainer.step(rows)
    for key in ("reward_mean", "reward_std", "kl", "entropy", "policy_loss", "value_loss", "clip_frac",
                "approx_kl", "response_length", "time_rollout", "time_score", "time_train"):
        assert key in step_stats


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_src, tmp_path):
    """Checkpoint every 2 steps, stop after step 3, resume in a fresh trainer: same result as never stopping."""
    from llmpost.rl.trainer import PPOTrainer

    src, tok = tiny_src
    rows = [{"prompt": [{"role": "user", "content": f"say {i}"}]} for i in range(16)]

    def reward(prompts, completions, rows):
        values = [float("7" in c) for c in completions]
        return values, {"seven": values}

    def trainer():
        torch.manual_seed(0)
        policy, reference = load_policy(src, qlora=False, lora=None)
        return PPOTrainer(policy, reference, tok, reward, rows, rollout=RolloutSettings(max_new_tokens=6),
                          kl=KLSettings(), ppo=PPOSettings(mini_batch_size=4, epochs=2), batch_size=8, steps=4,
                          learning_rate=1e-3, seed=3)

    whole = trainer()
    history = whole.train()

    class Stop(Exception):
        pass

    def stop_after_3(step, stats):
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        trainer().train(on_step=stop_after_3, checkpoint_dir=tmp_path, checkpoint_every=2)
    resumed = trainer()
    seen = []
    resumed_history = resumed.train(on_step=lambda step, stats: seen.append(step), checkpoint_dir=tmp_path,
                                    checkpoint_every=2)
    assert seen == [1, 2, 3, 4]  # the restored steps are replayed to the reporter
    assert [h["reward_mean"] for h in resumed_history] == [h["reward_mean"] for h in history]
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
