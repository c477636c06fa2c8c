"""evaluation/generation.py: greedy answers and samples in batches that finished rows leave, against `model.generate`.

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
from llmpost.evaluation.rows import pad_rows, shared_start
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


def test_a_shared_start_and_equal_prompts_are_computed_once_and_answer_as_generate_does(smollm2):
    """SmolLM2's template puts its default system prompt before every question: it runs once, for one row,
    and is copied to every row; equal prompts (GRPO's samples of one prompt) run once each."""
    model, tokenizer = smollm2
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in load_builtin("arith-prompts", "test")[:3]]
    distinct = [tokenizer(chat_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts]
    ids = [row for row in distinct for _ in range(3)]
    shapes = []  # each forward's input_ids shape
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
                                           with_kwargs=True)
    try:
        rows = generation.greedy_rows(model, ids, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id, max_new_tokens=12)
    finally:
        hook.remove()
    with_generate = generation.decode_with_generate(model, ids, eos_token_id=tokenizer.eos_token_id,
                                                    pad_token_id=tokenizer.pad_token_id, max_new_tokens=12,
                                                    do_sample=False, temperature=1.0, top_p=1.0)

    shared = shared_start([tuple(row) for row in distinct])
    assert shared >= 20  # the system prompt, and the user turn's header
    assert shapes[:3] == [(1, shared), (3, max(map(len, distinct)) - shared), (9, 1)]
    eos = tokenizer.eos_token_id
    assert rows == [row[: row.index(eos) + 1] if eos in row else row for row in with_generate]


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


WARPERS = [dict(temperature=0.7, top_k=20, top_p=0.8), dict(temperature=0.5, min_p=0.05)]  # each warper, in turn


@pytest.mark.parametrize("warpers", WARPERS, ids=lambda w: ",".join(f"{k}={v}" for k, v in w.items()))
def test_sampled_rows_draw_what_model_generate_draws_while_no_row_has_ended(smollm2, warpers):
    model, tokenizer = smollm2
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in load_builtin("arith-prompts", "test")[:3]]
    ids = [tokenizer(chat_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts] * 3
    torch.manual_seed(3)
    rows = generation.sampled_rows(model, ids, stop_token_ids=[tokenizer.eos_token_id],
                                   pad_token_id=tokenizer.pad_token_id, max_new_tokens=4, **warpers)
    torch.manual_seed(3)
    input_ids, mask = pad_rows(ids, tokenizer.pad_token_id, left=True)
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=True, max_new_tokens=4,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                             **{"top_k": 0, **warpers})

    assert rows == out[:, input_ids.shape[1]:].tolist()  # four tokens: nobody answers in fewer
    assert len({tuple(row) for row in rows}) > 3  # sampled: the same prompt drew different answers


def test_sampled_rows_end_at_their_own_stop_token_and_leave_the_batch(smollm2):
    model, tokenizer = smollm2
    prompts = [[{"role": "user", "content": "Reply with one word: yes or no. Is 3 more than 2?"}],
               [{"role": "user", "content": "Count from 1 to 30, separated by commas."}]]
    ids = [tokenizer(chat_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts] * 2
    five = tokenizer("5", add_special_tokens=False)["input_ids"][0]
    torch.manual_seed(0)
    rows = generation.sampled_rows(model, ids, stop_token_ids=[tokenizer.eos_token_id], max_new_tokens=40,
                                   pad_token_id=tokenizer.pad_token_id, temperature=0.3)
    stopped_at_five = generation.sampled_rows(model, ids, stop_token_ids=[tokenizer.eos_token_id, five],
                                              max_new_tokens=40, pad_token_id=tokenizer.pad_token_id,
                                              temperature=0.3)

    for row in rows:  # each ends at its end of turn or at the budget, nothing after it
        assert row[-1] == tokenizer.eos_token_id or len(row) == 40
        assert tokenizer.eos_token_id not in row[:-1]
    assert min(len(row) for row in rows[0::2]) < 10 and max(len(row) for row in rows[1::2]) == 40
    for row in stopped_at_five[1::2]:  # any stop token ends a row: the count stops at its first 5
        assert row[-1] in (five, tokenizer.eos_token_id) and five not in row[:-1]


def test_only_temperature_top_k_top_p_and_min_p_sample_in_rows():
    from transformers import GenerationConfig

    assert generation.plain_sampling(GenerationConfig(do_sample=True, temperature=0.5, top_k=0, top_p=1.0,
                                                      min_p=None, repetition_penalty=1.0))  # TRL's GRPO
    assert generation.plain_sampling(GenerationConfig(do_sample=True, temperature=0.7, top_k=20, top_p=0.8, min_p=0.1))
    assert not generation.plain_sampling(GenerationConfig(do_sample=True, repetition_penalty=1.1))
    assert not generation.plain_sampling(GenerationConfig(do_sample=True, typical_p=0.9))
    assert not generation.plain_sampling(GenerationConfig(do_sample=True, num_return_sequences=2))
