"""The built-in tiny model: deterministic build, tokenizer (words, number chunks, characters), chat template."""

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


def test_numbers_are_chunks_of_up_to_three_digits_each_one_token():
    tok = build_tokenizer()
    for text, pieces in [("13+7=20", ["13", "+", "7", "=", "20"]), ("1234567", ["123", "456", "7"]),
                         ("x 1000 007", ["x", " ", "100", "0", " ", "007"]), ("9.5", ["9", ".", "5"])]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert [tok.decode([i]) for i in ids] == pieces
        assert tok.decode(ids) == text


def test_words_are_one_token_each_and_other_text_falls_back_to_characters():
    tok = build_tokenizer()
    for text, pieces in [("Ann has 3 pens.", ["Ann", " has", " ", "3", " pens", "."]),
                         ("#### 12", ["####", " ", "12"]), ("Ann zebra", ["Ann", " ", "z", "e", "b", "r", "a"])]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert [tok.decode([i]) for i in ids] == pieces
        assert tok.decode(ids) == text


def test_every_word_of_the_builtin_data_is_one_token():
    """A word added to the built-in templates must join tiny's vocabulary (and TINY_VERSION go up)."""
    import re

    from llmpost.data.builtin import load_builtin

    texts = [msg["content"] for name in ("arith-judge", "arith-steps-sft")
             for row in load_builtin(name, "test") for msg in row["messages"]]
    tok = build_tokenizer()
    words = {w for text in texts for w in re.findall(r" ?[A-Za-z]+", text)}
    assert len(words) > 50
    assert {w for w in words if len(tok(w, add_special_tokens=False)["input_ids"]) != 1} == set()


def test_number_embeddings_start_on_a_helix(tmp_path):
    """Numbers a period apart share their cos/sin features: 7 and 17 agree on the period-10 pair."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny(tmp_path / "t")
    emb = AutoModelForCausalLM.from_pretrained(path).get_input_embeddings().weight
    tok = AutoTokenizer.from_pretrained(path)
    seven, seventeen, eight = (emb[tok.convert_tokens_to_ids(n)] for n in ("7", "17", "8"))
    period_10 = slice(5, 7)  # dim 0: "number"; then (cos, sin) for periods 2, 5, 10, ...
    assert torch.allclose(seven[period_10], seventeen[period_10], atol=1e-6)
    assert not torch.allclose(seven[period_10], eight[period_10], atol=1e-3)
    assert seven[0] == seventeen[0] != emb[tok.convert_tokens_to_ids("A")][0]  # a shared "number" direction


def test_build_is_deterministic(tmp_path):
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(build_tiny(tmp_path / "a"))
    b = AutoModelForCausalLM.from_pretrained(build_tiny(tmp_path / "b"))
    n = sum(p.numel() for p in a.parameters())
    assert 0.5e6 < n < 2e6
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
