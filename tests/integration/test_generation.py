"""evaluation/generation.py: greedy answers in batches that finished rows leave, against `model.generate`.

On SmolLM2 (a BPE tokenizer, ChatML, pad = eos) prompts of different lengths share a batch, some
answers end early and some reach the token budget: each must equal what `model.generate` gives
the prompt on its own.
"""

from __future__ import annotations

import pytest
import torch

from llmpost.data.builtin import load_builtin
from llmpost.evaluation import generation
from llmpost.evaluation.generation import chat_prompt, generate
from llmpost.models.load import load_model, load_tokenizer, resolve_model


@pytest.fixture(scope="module")
def smollm2():
    src = resolve_model("smollm2")
    return load_model(src), load_tokenizer(src, False)


def alone(model, tokenizer, prompt: list[dict], max_new_tokens: int) -> str:
    """`model.generate` on one prompt: no padding, no batch."""
    ids = tokenizer(chat_prompt(tokenizer, prompt), add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_batched_greedy_answers_equal_generating_each_prompt_alone(smollm2):
    model, tokenizer = smollm2
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in load_builtin("arith-prompts", "test")[:5]]
    prompts.append([{"role": "user", "content": "Reply with one word: yes or no. Is 3 more than 2?"}])
    batched = generate(model, tokenizer, prompts, max_new_tokens=40, batch_size=4)
    expected = [alone(model, tokenizer, p, 40) for p in prompts]

    assert batched == expected
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in expected]
    assert min(lengths) < 20 and max(lengths) >= 39  # rows left the batch early, others ran to the budget


def test_a_generation_config_beyond_the_argmax_is_decoded_by_model_generate(smollm2, monkeypatch):
    model, tokenizer = smollm2
    prompts = [[{"role": "user", "content": "Count from 1 to 30, separated by commas."}]]
    plain = generate(model, tokenizer, prompts, max_new_tokens=40)
    monkeypatch.setattr(model.generation_config, "repetition_penalty", 3.0)
    assert not generation.plain_greedy(model)
    penalised = generate(model, tokenizer, prompts, max_new_tokens=40)

    assert penalised == [alone(model, tokenizer, prompts[0], 40)]  # the model's own config applies
    assert penalised != plain


def test_sampling_draws_what_model_generate_draws_with_the_same_seed(smollm2):
    model, tokenizer = smollm2
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in load_builtin("arith-prompts", "test")[:3]]
    torch.manual_seed(7)
    sampled = generate(model, tokenizer, prompts, max_new_tokens=16, do_sample=True, temperature=0.9, top_p=0.95)
    torch.manual_seed(7)
    ids = [tokenizer(chat_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts]
    tokens = generation.decode_with_generate(model, ids, eos_token_id=tokenizer.eos_token_id,
                                             pad_token_id=tokenizer.pad_token_id, max_new_tokens=16,
                                             do_sample=True, temperature=0.9, top_p=0.95)

    assert sampled == tokenizer.batch_decode(tokens, skip_special_tokens=True)


def test_only_settings_that_change_greedy_decoding_send_a_model_to_model_generate():
    from types import SimpleNamespace

    from transformers import GenerationConfig

    def model(**settings):
        return SimpleNamespace(generation_config=GenerationConfig(**settings))

    assert generation.plain_greedy(model())
    assert generation.plain_greedy(model(do_sample=True, temperature=0.7, top_k=20, top_p=0.8))  # sampling only
    assert not generation.plain_greedy(model(repetition_penalty=1.05))
    assert not generation.plain_greedy(model(num_beams=4))
    assert not generation.plain_greedy(model(no_repeat_ngram_size=3))
