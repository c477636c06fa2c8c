"""eval.batch_size left unset: 64 prompts at once, or on a CPU's greedy decoding as many as fit 2 GiB
of KV cache (at most 256); the planner sizes the same batch, and the fingerprint does not count it."""

from __future__ import annotations

import pytest
import torch

from llmpost.artifacts.store import Store
from llmpost.evaluation.generation import (
    CPU_KV_BUDGET,
    CPU_MAX_BATCH,
    FIXED_BATCH,
    default_batch,
    kv_bytes_per_token,
)
from llmpost.pipeline.decisions import config_changes
from llmpost.pipeline.execute import fingerprint_of
from llmpost.stages import load_stage
from llmpost.stages.context import StageContext


def test_a_cpu_takes_what_fits_its_kv_budget_and_a_gpu_keeps_the_fixed_batch():
    assert default_batch("cpu", 300_000) == CPU_MAX_BATCH  # tiny: 256 prompts hold 77 MB
    assert default_batch("cpu", 10 * 2**20) == CPU_KV_BUDGET // (10 * 2**20) == 204
    assert default_batch("cpu", 3 * 2**30) == 1  # one prompt over the budget still runs, alone
    assert default_batch("cuda", 300_000) == FIXED_BATCH


def test_kv_bytes_per_token_is_what_the_cache_holds(tiny_model):
    from transformers import DynamicCache

    model = tiny_model
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=torch.ones(3, 7, dtype=torch.long), past_key_values=cache, use_cache=True)
    held = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    assert kv_bytes_per_token(model) * 3 * 7 == held


def test_sampling_keeps_the_fixed_batch_so_a_seed_draws_the_same_samples_everywhere(tiny_model):
    from llmpost.data.builtin import load_builtin
    from llmpost.evaluation.generation import generate
    from llmpost.models.load import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model("tiny"), False)
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in load_builtin("arith-prompts", "test")[:150]]

    def sampled(batch_size):
        torch.manual_seed(3)
        return generate(tiny_model, tokenizer, prompts, max_new_tokens=12, batch_size=batch_size, do_sample=True)

    unset = sampled(None)
    assert unset == sampled(FIXED_BATCH)
    assert unset != sampled(CPU_MAX_BATCH)  # the draws do depend on the batch
    greedy = generate(tiny_model, tokenizer, prompts, max_new_tokens=12)  # one batch of 150 on a CPU
    assert greedy == generate(tiny_model, tokenizer, prompts, max_new_tokens=12, batch_size=FIXED_BATCH)


def test_the_planner_sizes_the_batch_generation_will_take():
    from llmpost.memplan.estimate import kv_bytes_per_token as planned_bytes_per_token
    from llmpost.memplan.stages import plan_stage

    def planned(model, device, **eval_settings):
        plan = plan_stage("sft", load_stage("sft").Config(model=model, eval=eval_settings), device=device)
        parts = plan.phases["evaluation"].transient
        return int(next(p for p in parts if p.name == "generation KV cache").note.split(" sequences")[0]), plan.arch

    smollm2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert planned(smollm2, "cuda")[0] == FIXED_BATCH
    batch, arch = planned(smollm2, "cpu")  # each prompt taken at max_length 512 + 256 new tokens
    assert FIXED_BATCH < batch == CPU_KV_BUDGET // (768 * planned_bytes_per_token(arch, bf16=False)) < CPU_MAX_BATCH
    assert planned("tiny", "cpu")[0] == CPU_MAX_BATCH
    assert planned(smollm2, "cpu", batch_size=16)[0] == planned(smollm2, "cuda", batch_size=16)[0] == 16


def test_the_eval_batch_is_not_part_of_the_fingerprint_but_the_rest_of_eval_is(tmp_path):
    config = load_stage("sft").Config
    ctx = StageContext(stage="sft", name="sft", store=Store(tmp_path))
    unset = fingerprint_of("sft", config(), ctx)
    assert fingerprint_of("sft", config(eval={"batch_size": 8}), ctx) == unset
    assert fingerprint_of("sft", config(eval={"max_samples": 10}), ctx) != unset
    old, new = config().model_dump(mode="json"), config(eval={"batch_size": 8, "max_samples": 10}).model_dump(mode="json")
    assert config_changes(old, new) == ["eval.max_samples: 1000 -> 10"]


@pytest.fixture
def tiny_model():
    from llmpost.models.load import load_model, resolve_model

    return load_model(resolve_model("tiny")).eval()
