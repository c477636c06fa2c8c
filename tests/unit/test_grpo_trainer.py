"""The grpo stage's trainer: its forward in length-sorted passes gives what TRL's one pass gives."""

from __future__ import annotations

import pytest
import torch

from llmpost.config.base import LoraSettings

PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12], [13, 14], [15, 16, 17, 18], [19, 20, 21], [22, 23, 24, 25, 26, 27]]
COMPLETIONS = [[30, 31, 2], [32, 2], [33, 34, 35, 36, 37, 38, 39], [40, 41, 42, 2], [43], [44, 45, 46, 47, 2]]


def batch_as_trl_builds_it(pad: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Prompts left-padded, completions right-padded (each up to its EOS), side by side: TRL's loss input."""
    from llmpost.evaluation.rows import pad_rows

    prompt, prompt_mask = pad_rows(PROMPTS, pad, left=True)
    completion, completion_mask = pad_rows(COMPLETIONS, pad, left=False)
    return torch.cat([prompt, completion], 1), torch.cat([prompt_mask, completion_mask], 1), completion.size(1)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    """The stage's own trainer on tiny, with a new LoRA adapter on every layer."""
    from datasets import Dataset

    from llmpost.artifacts.store import Store
    from llmpost.models.load import resolve_model
    from llmpost.stages import load_stage
    from llmpost.stages.context import StageContext
    from llmpost.stages.grpo import build_grpo_args, prompt_rows
    from llmpost.stages.grpo_trainer import LlmpostGRPOTrainer
    from llmpost.stages.training import load_trainable

    work = tmp_path_factory.mktemp("grpo")
    src = resolve_model("tiny")
    cfg = load_stage("grpo").Config(model="tiny", max_steps=1, batch_size=4, num_generations=2,
                                    lora=LoraSettings(enabled=True, r=4, dropout=0.0))
    ctx = StageContext(stage="grpo", name="grpo", store=Store(work / "store"), work_dir=work / "run")
    torch.manual_seed(0)
    tokenizer, model, peft_config = load_trainable(src, cfg)
    trainer = LlmpostGRPOTrainer(
        model=model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
        args=build_grpo_args(cfg, ctx, src.is_tiny), train_dataset=Dataset.from_list(prompt_rows(ctx, cfg.data, None)),
        processing_class=tokenizer, peft_config=peft_config)
    with torch.no_grad():  # the adapters start as no-ops (B = 0): give them weight, so that they have gradients
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    return trainer


def logps_and_grads(trainer, forward_batch_size):
    """Per-token log-probs and entropies of the batch's completion tokens, and the LoRA gradients of their sum."""
    input_ids, attention_mask, keep = batch_as_trl_builds_it(trainer.processing_class.pad_token_id)
    mask = attention_mask[:, -keep:].bool()
    trainer.forward_batch_size = forward_batch_size
    trainer.model.zero_grad()
    logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
        trainer.model, input_ids, attention_mask, keep, compute_entropy=True)
    logps[mask].sum().backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return logps[mask], entropies[mask], grads, logps.shape


@pytest.mark.parametrize("forward_batch_size", [1, 2, 4])
def test_passes_give_the_whole_batchs_log_probs_entropies_and_gradients(trainer, forward_batch_size):
    whole_logps, whole_entropies, whole_grads, shape = logps_and_grads(trainer, None)
    logps, entropies, grads, passes_shape = logps_and_grads(trainer, forward_batch_size)

    assert passes_shape == shape  # [rows, longest completion]: what TRL's loss expects
    assert len(grads) == len(whole_grads) > 0
    torch.testing.assert_close(logps, whole_logps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropies, whole_entropies, rtol=1e-5, atol=1e-5)
    for name, grad in grads.items():  # sums over other orders of the same terms: equal to float32 rounding
        whole = whole_grads[name]
        torch.testing.assert_close(grad, whole, rtol=1e-4, atol=1e-4 * float(whole.abs().max()))


def test_the_padding_after_a_completion_is_zero_and_each_row_keeps_its_own_values(trainer):
    input_ids, attention_mask, keep = batch_as_trl_builds_it(trainer.processing_class.pad_token_id)
    trainer.forward_batch_size = 2
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, input_ids, attention_mask, keep)
        alone = [trainer._get_per_token_logps_and_entropies(trainer.model, input_ids[i:i + 1],
                                                            attention_mask[i:i + 1], keep)[0][0]
                 for i in range(len(PROMPTS))]  # one row: a single pass, TRL's own
    for row, completion in enumerate(COMPLETIONS):
        n = len(completion)
        torch.testing.assert_close(logps[row, :n], alone[row][:n], rtol=1e-5, atol=1e-5)
        assert torch.all(logps[row, n:] == 0)


def test_sizing_the_passes_neither_reruns_nor_restarts_a_grpo_stage(tmp_path):
    from llmpost.artifacts.store import Store
    from llmpost.pipeline.execute import fingerprint_of
    from llmpost.stages import load_stage
    from llmpost.stages.context import StageContext

    config = load_stage("grpo").Config
    ctx = StageContext(stage="grpo", name="grpo", store=Store(tmp_path))
    default = fingerprint_of("grpo", config(), ctx)
    assert fingerprint_of("grpo", config(forward_batch_size=None), ctx) == default
    assert fingerprint_of("grpo", config(forward_batch_size=2), ctx) == default
    assert fingerprint_of("grpo", config(num_generations=4), ctx) != default


def test_completions_are_sampled_in_rows_that_end_at_the_trainers_stop_tokens(trainer, monkeypatch):
    rows = prompt_token_ids(trainer, 8)
    assert trainer.samples_in_rows(None, {})
    torch.manual_seed(0)
    first, logprobs = trainer._generate_single_turn(rows, None, {}, num_generations=2)
    budget = trainer.generation_config.max_new_tokens
    assert logprobs is None and len(first) == len(rows) and max(len(c) for c in first) == budget  # tiny rarely ends
    common = max(set(first[0]), key=lambda t: sum(c.count(t) for c in first))  # make a frequent token a stop token
    monkeypatch.setattr(trainer, "eos_token_ids", [*trainer.eos_token_ids, common])
    torch.manual_seed(0)
    completions, _ = trainer._generate_single_turn(rows, None, {}, num_generations=2)

    for completion in completions:  # each ends at a stop token or the budget, with no stop token before
        assert completion[-1] in trainer.eos_token_ids or len(completion) == budget
        assert not set(completion[:-1]) & set(trainer.eos_token_ids)
    assert min(len(c) for c in completions) < budget


def test_a_generation_config_beyond_plain_sampling_goes_to_trls_generate(trainer, monkeypatch):
    monkeypatch.setattr(trainer.generation_config, "repetition_penalty", 1.3)
    assert not trainer.samples_in_rows(None, {})
    torch.manual_seed(0)
    completions, _ = trainer._generate_single_turn(prompt_token_ids(trainer, 2), None, {}, num_generations=2)
    assert len(completions) == 2


def test_a_training_step_samples_in_rows_and_runs_its_forward_in_passes(trainer, monkeypatch):
    """Both overrides take TRL's private hooks: were one renamed, a step would quietly take TRL's slower path."""
    from trl import GRPOTrainer

    import llmpost.stages.grpo_trainer as module

    sampled_prompts, pass_rows = [], []
    real_sampled_rows, real_pass = module.sampled_rows, GRPOTrainer._get_per_token_logps_and_entropies

    def counted_sampled_rows(model, rows, **kwargs):
        sampled_prompts.append(len(rows))
        return real_sampled_rows(model, rows, **kwargs)

    def counted_pass(self, model, input_ids, *args, **kwargs):
        pass_rows.append(input_ids.size(0))
        return real_pass(self, model, input_ids, *args, **kwargs)

    monkeypatch.setattr(module, "sampled_rows", counted_sampled_rows)
    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", counted_pass)
    trainer.forward_batch_size = 2
    trainer.train()  # the fixture's one step: 4 completions

    assert sum(sampled_prompts) == 4
    assert pass_rows and max(pass_rows) == 2


def prompt_token_ids(trainer, n: int) -> list[list[int]]:
    """The first `n` built-in prompts as the trainer tokenizes them: chat template, generation prompt."""
    from llmpost.data.builtin import load_builtin

    tokenizer = trainer.processing_class
    return [tokenizer.apply_chat_template([{"role": "user", "content": row["prompt"]}], add_generation_prompt=True,
                                          tokenize=True, return_dict=False)
            for row in load_builtin("arith-prompts", "train")[:n]]
