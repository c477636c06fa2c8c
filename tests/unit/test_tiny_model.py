"""The built-in tiny model: deterministic build, character tokenizer, chat template."""

from __future__ import annotations

import torch

from llmpost.models.tiny import build_tiny, build_tokenizer


def test_tokenizer_round_trips_text_and_ends_turns_with_eos():
    tok = build_tokenizer()
    text = "Ann has 3 pens.\n#### 7"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                                   tokenize=False)
    assert chat.endswith(tok.eos_token)


def test_build_is_deterministic(tmp_path):
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(build_tiny(tmp_path / "a"))
    b = AutoModelForCausalLM.from_pretrained(build_tiny(tmp_path / "b"))
    n = sum(p.numel() for p in a.parameters())
    assert 0.5e6 < n < 2e6
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
