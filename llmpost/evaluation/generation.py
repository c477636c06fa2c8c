"""Batched generation from chat prompts, the one way llmpost samples from a model for eval.

Eval, the judge, best-of-N and `llmpost generate` all come here. Answers differ in length
(SmolLM2's first 200 held-out answers with 96 new tokens allowed: 61 on average, a third cut
at 96), and a batch that decodes until its longest answer ends spends many of its steps on
rows that are done. So a row leaves the batch (and its KV cache) at its end-of-turn token,
and the prompts of a batch are of similar length (longest first), so that left padding
stays short. Work every row would repeat runs once: the start all prompts share (a chat
template's system prompt) and equal prompts (`prefill`, on `rows.forward_distinct`).

This loop decodes greedily and gives `model.generate`'s answers. Sampling here goes to
`model.generate` itself, so a seed draws the same samples as it always has; so does a model
whose generation config changes greedy decoding (a repetition penalty, beam search, ...).
GRPO's and PPO's training samples come through the same loop (`sampled_rows`): there a step's
time counts, and any fair draw will do.
"""

from __future__ import annotations

from llmpost.evaluation.rows import forward_distinct, pad_rows

# generation_config fields that change greedy decoding, with their neutral values (a model that sets
# one goes to model.generate). Sampling-only fields (top_k, min_p, typical_p, ...) are not here:
# model.generate ignores them when it does not sample.
NOT_APPLIED = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
               "encoder_no_repeat_ngram_size": 0, "min_new_tokens": 0, "min_length": 0, "bad_words_ids": None,
               "sequence_bias": None, "suppress_tokens": None, "begin_suppress_tokens": None,
               "forced_bos_token_id": None, "forced_eos_token_id": None, "exponential_decay_length_penalty": None,
               "remove_invalid_values": False, "num_beams": 1, "guidance_scale": None, "watermarking_config": None}
# Sampling fields that `sampled_rows` does not apply (it applies temperature, top_k, top_p and min_p), with
# their neutral values: a config that sets one samples with model.generate.
NOT_SAMPLED = {"top_h": None, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "num_return_sequences": 1}


# How many prompts decode at once where the size is not chosen from memory: sampling (a seed's draws
# depend on the batch, so they stay the same on every machine), scoring, and greedy decoding on a GPU,
# whose memory also holds the trained model and its optimizer states (the planner sizes this batch).
FIXED_BATCH = 64
# Greedy decoding on a CPU: a decoding step reads every weight once for the whole batch, so more rows at
# once cost little more (SmolLM2's 200 held-out answers of 96 tokens: 53.8 s at 64, 43.1 s at 256, 2
# cores), and RAM is rarely short. The batch takes what fits this KV cache, up to CPU_MAX_BATCH.
CPU_KV_BUDGET = 2 * 2**30
CPU_MAX_BATCH = 256


def generate(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int = 32, batch_size: int | None = None,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0) -> list[str]:
    """Completions (special tokens stripped) for conversational `prompts`, in order.

    `batch_size` None: FIXED_BATCH, or on a CPU's greedy decoding as many as `default_batch` allows.
    """
    ids = [tokenizer(chat_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts]
    greedy = not do_sample and plain_greedy(model)
    if batch_size is None:
        batch_size = fitting_batch(model, ids, max_new_tokens) if greedy else FIXED_BATCH
    decode = greedy_rows if greedy else decode_with_generate
    order = list(range(len(ids)))  # sampled: the given order, which the seed's draws follow
    if greedy:
        order.sort(key=lambda i: -len(ids[i]))  # similar lengths share a batch
    was_training = model.training
    model.eval()
    outputs: list[str] = [""] * len(ids)
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            tokens = decode(model, [ids[i] for i in batch], eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, max_new_tokens=max_new_tokens,
                            do_sample=do_sample, temperature=temperature, top_p=top_p)
            for i, text in zip(batch, tokenizer.batch_decode(tokens, skip_special_tokens=True), strict=True):
                outputs[i] = text
    finally:
        model.train(was_training)
    return outputs


def fitting_batch(model, ids: list[list[int]], max_new_tokens: int) -> int:
    """`default_batch` on the model's device for these prompts: the longest one plus its answer budget."""
    longest = max((len(row) for row in ids), default=0) + max_new_tokens
    return default_batch(model.device.type, kv_bytes_per_token(model) * longest)


def default_batch(device_type: str, kv_bytes_per_prompt: int) -> int:
    """eval.batch_size's default for greedy decoding: FIXED_BATCH, or on a CPU what fits CPU_KV_BUDGET."""
    if device_type != "cpu":
        return FIXED_BATCH
    return max(1, min(CPU_MAX_BATCH, CPU_KV_BUDGET // max(1, kv_bytes_per_prompt)))


def kv_bytes_per_token(model) -> int:
    """Bytes one token adds to the KV cache: a key and a value per layer, at the model's precision."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * model.dtype.itemsize


def plain_greedy(model) -> bool:
    """True when the model's generation config leaves greedy decoding the plain argmax."""
    return leaves_neutral(getattr(model, "generation_config", None), NOT_APPLIED)


def leaves_neutral(config, fields: dict) -> bool:
    """True when generation config `config` sets none of `fields` to other than its neutral value (or None)."""
    return not any(getattr(config, name, None) not in (None, neutral) for name, neutral in fields.items())


def greedy_rows(model, rows: list[list[int]], *, eos_token_id: int, pad_token_id: int, max_new_tokens: int,
                **_sampling) -> list[list[int]]:
    """Each row's greedy new tokens (up to and including its end-of-turn token), decoded with a KV cache."""
    return decode_rows(model, rows, lambda logits: logits.argmax(dim=-1), stop_token_ids=[eos_token_id],
                       pad_token_id=pad_token_id, max_new_tokens=max_new_tokens)


def sampled_rows(model, rows: list[list[int]], *, stop_token_ids: list[int], pad_token_id: int, max_new_tokens: int,
                 temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                 min_p: float | None = None) -> list[list[int]]:
    """Each row's sampled new tokens (up to and including its first stop token), decoded with a KV cache.

    The draws are `model.generate`'s: its warpers, in its order, then one multinomial draw per
    row. While every row is writing they are the same draws; once one has ended, the batch is
    smaller and the seed's stream goes to fewer rows, so later samples differ from generate's
    (equally likely, not the same). Only a config that `plain_sampling` accepts comes here.
    """
    import torch
    from transformers import (
        LogitsProcessorList,
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = LogitsProcessorList()
    if temperature is not None and temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    if min_p is not None:
        warpers.append(MinPLogitsWarper(min_p))

    def draw(logits):
        probs = warpers(None, logits.float()).softmax(dim=-1)  # these warpers read the scores alone
        return torch.multinomial(probs, num_samples=1).squeeze(1)

    return decode_rows(model, rows, draw, stop_token_ids=stop_token_ids, pad_token_id=pad_token_id,
                       max_new_tokens=max_new_tokens)


def plain_sampling(config) -> bool:
    """True when sampling with generation config `config` is temperature, top-k, top-p and min-p alone."""
    return leaves_neutral(config, {**NOT_APPLIED, **NOT_SAMPLED})


def decode_rows(model, rows: list[list[int]], choose, *, stop_token_ids: list[int], pad_token_id: int,
                max_new_tokens: int) -> list[list[int]]:
    """Each row's new tokens, `choose(last logits) -> tokens` at every step, up to and including its first stop token.

    A finished row is dropped from the batch, its cache rows with it: the next steps cost only
    the rows still writing.
    """
    import torch
    from transformers import DynamicCache

    device = model.device
    stops = torch.tensor(stop_token_ids, device=device)
    live = torch.arange(len(rows), device=device)  # the row each batch line writes
    new: list[list[int]] = [[] for _ in rows]
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        logits, mask = prefill(model, rows, cache, pad_token_id)
        for step in range(max_new_tokens):
            tokens = choose(logits)
            for row, token in zip(live.tolist(), tokens.tolist(), strict=True):
                new[row].append(token)
            going = ~torch.isin(tokens, stops)
            if step == max_new_tokens - 1 or not going.any():
                break
            if not going.all():
                keep = going.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                live, tokens, mask = live[keep], tokens[keep], mask[keep]
            mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
            logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=mask.sum(-1, keepdim=True) - 1,
                           past_key_values=cache, use_cache=True).logits[:, -1]
    return new


def prefill(model, rows: list[list[int]], cache, pad_token_id: int):
    """Run the prompts into `cache`: (each row's last logits, the attention mask so far).

    Work that every row would repeat is done once. Equal prompts (GRPO's group of samples per
    prompt) are computed once and their cache rows copied; a start that all prompts share is
    computed once (`forward_distinct`). The real-model recipe's SFT model on 2 cores: the 64
    prompts of a PPO step ran in 3.3-3.4 s instead of 5.8-6.4; sampling their answers took
    7.1-7.2 s instead of 9.4-9.5, a GRPO step's 8 prompts x 4 samples 3.2-3.5 s instead of
    5.2-5.6, and 200 held-out answers of up to 96 tokens 19.3-19.4 s instead of 27.5-30.4, the
    same 200 answers. Rounding differs from one whole pass (other matrix shapes), so a near-tie
    can go the other way.
    """
    import torch

    distinct = list(dict.fromkeys(tuple(row) for row in rows))
    logits, mask = forward_distinct(model, distinct, cache, pad_token_id, **last_logits_only(model))
    logits = logits[:, -1]
    if len(distinct) < len(rows):
        index = {row: i for i, row in enumerate(distinct)}
        copies = torch.tensor([index[tuple(row)] for row in rows], device=model.device)
        cache.batch_select_indices(copies)
        logits, mask = logits[copies], mask[copies]
    return logits, mask


def last_logits_only(model) -> dict:
    """`logits_to_keep=1` where the model's forward takes it: a prompt's other logits are never read."""
    from inspect import signature

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model passes it on
    return {"logits_to_keep": 1} if "logits_to_keep" in signature(base.forward).parameters else {}


def decode_with_generate(model, rows: list[list[int]], *, eos_token_id: int, pad_token_id: int, max_new_tokens: int,
                         do_sample: bool, temperature: float, top_p: float, top_k: int | None = None) -> list[list[int]]:
    """`model.generate` on the batch, with the model's own generation config: each row's new tokens.

    `top_k` None keeps the config's (generate's default top-k is 50); 0 samples from the whole vocabulary."""
    import torch

    input_ids, mask = pad_rows(rows, pad_token_id, left=True)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else {"do_sample": False}
    if do_sample and top_k is not None:
        sampling["top_k"] = top_k
    with torch.no_grad():
        out = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                             max_new_tokens=max_new_tokens, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
                             **sampling)
    return out[:, input_ids.shape[1]:].tolist()


def chat_prompt(tokenizer, messages: list[dict]) -> str:
    """The prompt text a chat model continues; plain concatenation for models without a template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n"
