"""Batched generation from chat prompts, the one way llmpost samples from a model for eval."""

from __future__ import annotations


def generate(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int = 32, batch_size: int = 64,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0) -> list[str]:
    """Completions (special tokens stripped) for conversational `prompts`, in order."""
    import torch

    texts = [chat_prompt(tokenizer, p) for p in prompts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else {"do_sample": False}
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id, **sampling)
            new = out[:, batch["input_ids"].shape[1]:]
            outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return outputs


def chat_prompt(tokenizer, messages: list[dict]) -> str:
    """The prompt text a chat model continues; plain concatenation for models without a template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n"
