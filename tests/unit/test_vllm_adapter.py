"""vLLM sampling for a LoRA policy on a 4-bit base: vLLM gets the adapter alone, and answers with it.

vLLM cannot run here; `tests/vllm_stand_in.py` stands in for it (and says why). The policy, its
bitsandbytes 4-bit layers, the adapter files each sync writes and their loading by peft are real.
"""

from __future__ import annotations

import pytest
import torch
from vllm_stand_in import install, vllm_distribution

from llmpost.config.base import LoraSettings

PROMPTS = ["<|user|>what is 3 + 4?<|end|><|assistant|>", "<|user|>7 - 2<|end|><|assistant|>",
           "<|user|>a much longer question, about 12 + 30 and more<|end|><|assistant|>"]
NEW_TOKENS = 8


def qlora_policy(r: int = 4):
    from llmpost.models.load import load_tokenizer, resolve_model
    from llmpost.rl.policy import load_policy

    src = resolve_model("tiny")
    policy, _ = load_policy(src, qlora=True, lora=LoraSettings(enabled=True, r=r))
    return policy, load_tokenizer(src)


def give_the_adapter_weight(model, seed: int) -> None:
    """A new adapter is a no-op (B = 0); random weights make its answers differ from the base's, and each seed's."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def packed_4bit_weights(model) -> list[torch.Tensor]:
    import bitsandbytes as bnb

    return [m.weight.data.clone() for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def greedy_answers(model, tokenizer, prompt_ids: list[list[int]]) -> list[list[int]]:
    """`model`'s own greedy answers, each up to and including its first EOS."""
    eos, answers = tokenizer.eos_token_id, []
    for ids in prompt_ids:
        tensor = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(input_ids=tensor, attention_mask=torch.ones_like(tensor), do_sample=False,
                                 max_new_tokens=NEW_TOKENS, eos_token_id=eos, pad_token_id=eos)
        answer = out[0, len(ids):].tolist()
        answers.append(answer[: answer.index(eos) + 1] if eos in answer else answer)
    return answers


def rollout_answers(rollout) -> list[list[int]]:
    return [ids[mask.bool()].tolist() for ids, mask in zip(rollout.response_ids, rollout.response_mask, strict=True)]


def test_only_a_lora_policy_on_a_4bit_base_syncs_its_adapter_alone():
    from llmpost.models.load import load_model, resolve_model
    from llmpost.rl.policy import load_policy
    from llmpost.rl.vllm_adapter import syncs_adapter_only

    src = resolve_model("tiny")
    assert syncs_adapter_only(qlora_policy()[0])
    assert not syncs_adapter_only(load_policy(src, qlora=False, lora=LoraSettings(enabled=True, r=4))[0])
    assert not syncs_adapter_only(load_model(src, qlora=True))  # 4-bit, but nothing to sync but the base


def test_ppo_rollouts_come_from_the_policys_current_adapter_and_leave_its_4bit_base_alone(monkeypatch):
    from accelerate import Accelerator

    from llmpost.rl.rollout import prompt_token_lists
    from llmpost.rl.settings import RolloutSettings
    from llmpost.rl.vllm_adapter import AdapterVLLMGeneration
    from llmpost.rl.vllm_rollout import VllmRollouts

    stand_in = install(monkeypatch)
    torch.manual_seed(0)
    policy, tokenizer = qlora_policy(r=12)
    prompt_ids = prompt_token_lists(tokenizer, PROMPTS)
    with policy.disable_adapter():
        base_answers = greedy_answers(policy, tokenizer, prompt_ids)
    base_weights = packed_4bit_weights(policy)

    rollouts = VllmRollouts(policy, tokenizer, Accelerator(cpu=True), RolloutSettings(max_new_tokens=NEW_TOKENS))
    assert isinstance(rollouts.engine, AdapterVLLMGeneration)
    [llm] = stand_in.built
    assert llm.quantization == "bitsandbytes" and llm.enable_lora
    assert llm.options["max_lora_rank"] == 16 and llm.options["max_loras"] == 1  # rank 12 fits vLLM's 16

    give_the_adapter_weight(policy, seed=1)
    first = rollout_answers(rollouts(PROMPTS))
    assert first == greedy_answers(policy, tokenizer, prompt_ids) != base_answers

    give_the_adapter_weight(policy, seed=2)  # as an update would
    second = rollout_answers(rollouts(PROMPTS))
    assert second == greedy_answers(policy, tokenizer, prompt_ids) != first

    assert len(llm.adapters_read) == 2 and llm.prefix_cache_resets == 2
    snapshots = rollouts.engine.snapshots
    assert [p.name for p in snapshots.iterdir()] == ["sync-2"]  # the first sync's files are gone
    assert all(torch.equal(a, b) for a, b in zip(packed_4bit_weights(policy), base_weights, strict=True))


def test_a_grpo_step_samples_from_the_synced_adapter(monkeypatch, tmp_path):
    """One real step of the stage's trainer with `--qlora --vllm`: the completions' log-probs as vLLM gave
    them equal the policy's own, which they could not were vLLM sampling the bare base or a stale adapter."""
    from datasets import Dataset

    from llmpost.artifacts.store import Store
    from llmpost.models.load import count_4bit_layers, resolve_model
    from llmpost.rl.vllm_adapter import AdapterVLLMGeneration
    from llmpost.stages import load_stage
    from llmpost.stages.context import StageContext
    from llmpost.stages.grpo import build_grpo_args, prompt_rows
    from llmpost.stages.grpo_trainer import LlmpostGRPOTrainer
    from llmpost.stages.training import load_trainable

    stand_in = install(monkeypatch)
    src = resolve_model("tiny")
    cfg = load_stage("grpo").Config(model="tiny", max_steps=1, batch_size=4, num_generations=2, qlora=True,
                                    vllm=True, max_completion_length=NEW_TOKENS, logging_steps=1,
                                    lora=LoraSettings(r=4))
    ctx = StageContext(stage="grpo", name="grpo", store=Store(tmp_path / "store"), work_dir=tmp_path / "run")
    torch.manual_seed(0)
    tokenizer, model, peft_config = load_trainable(src, cfg)
    trainer = LlmpostGRPOTrainer(
        model=model, reward_funcs=[lambda completions, **_: [float(len(c)) for c in completions]],
        args=build_grpo_args(cfg, ctx, src.is_tiny),
        train_dataset=Dataset.from_list(prompt_rows(ctx, cfg.data, None)[:8]),
        processing_class=tokenizer, peft_config=peft_config)
    assert isinstance(trainer.vllm_generation, AdapterVLLMGeneration) and count_4bit_layers(trainer.model) > 0
    give_the_adapter_weight(trainer.model, seed=1)
    base_weights = packed_4bit_weights(trainer.model)

    trainer.train()

    [llm] = stand_in.built
    assert len(llm.adapters_read) == 1
    logged = next(row for row in trainer.state.log_history if "sampling/sampling_logp_difference/max" in row)
    # The adapter's input is rounded to bf16 (TRL keeps a 4-bit base's adapter in bf16), so the two differ by that
    # rounding: 0.003 here. The adapter of one update before (seed 1, synced, then seed 2 without a sync) gave 1.27.
    assert logged["sampling/sampling_logp_difference/max"] < 0.05
    assert all(torch.equal(a, b) for a, b in zip(packed_4bit_weights(trainer.model), base_weights, strict=True))


@pytest.mark.parametrize("stage", ["grpo", "ppo"])
def test_qlora_refuses_vllm_settings_an_adapter_sync_cannot_serve(stage):
    from llmpost.stages import load_stage

    Config = load_stage(stage).Config
    with pytest.raises(ValueError, match="set vllm_mode=colocate"):
        Config(qlora=True, vllm=True, vllm_mode="server")
    assert Config(qlora=True, vllm=True).vllm_mode == "colocate"
    assert Config(vllm=True, vllm_mode="server").qlora is False  # a full-precision base still syncs to a server


@pytest.mark.parametrize(("version", "refused"), [("0.27.1", False), ("0.22.0", False), ("0.28.0", True),
                                                  ("0.30.0", True), ("0.28.0rc1.dev12+g3f2a", True), ("1.0.0", True)])
def test_a_vllm_without_bitsandbytes_is_refused_with_the_version_to_install(monkeypatch, tmp_path, version, refused):
    from llmpost.errors import ConfigError
    from llmpost.rl.vllm_check import require_vllm_bitsandbytes

    monkeypatch.syspath_prepend(str(vllm_distribution(tmp_path, version)))
    if not refused:
        require_vllm_bitsandbytes()
        return
    with pytest.raises(ConfigError) as caught:
        require_vllm_bitsandbytes()
    assert f"vLLM {version} cannot load a 4-bit base" in str(caught.value)
    assert "vllm==0.27.1" in caught.value.hint and "--lora" in caught.value.hint
