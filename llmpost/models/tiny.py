"""The built-in `tiny` model: a ~1M-parameter Llama with a character tokenizer.

Built deterministically and offline (fixed seed, fixed vocabulary), saved once in
Hugging Face format under the cache dir and loaded from there like any local
model, so everything downstream (TRL, PEFT, plain `AutoModelForCausalLM`) treats
it as a real model. Sized to learn the built-in arithmetic task in minutes on two
CPU cores.
"""

from __future__ import annotations

import os
import shutil
import string
import tempfile
from pathlib import Path

TINY_VERSION = "1"
SPECIAL = ["<pad>", "<s>", "<|end|>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
CHARS = sorted(set(string.printable) - set("\r\x0b\x0c"))
# The assistant turn ends with <|end|>, which is also EOS, so generation stops there.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
ARCH = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
)


def cache_dir() -> Path:
    """Where llmpost keeps built things ($LLMPOST_CACHE, else ~/.cache/llmpost)."""
    return Path(os.environ.get("LLMPOST_CACHE", Path.home() / ".cache" / "llmpost"))


def tiny_path() -> Path:
    """The directory of the built `tiny` model, building it on first use."""
    path = cache_dir() / f"tiny-v{TINY_VERSION}"
    if not (path / "config.json").is_file():
        build_tiny(path)
    return path


def build_tokenizer():
    """A character-level fast tokenizer with chat special tokens and a chat template."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + CHARS)}
    # BPE with no merges splits every word into single characters; Fuse joins them back.
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="<|end|>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=SPECIAL[4:],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"  # generation pads on the left; trainers set their own side
    return tok


def build_tiny(path: Path) -> Path:
    """Build the tiny model and tokenizer into `path` (atomically, so concurrent builds are safe)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **ARCH,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        max_new_tokens=32, do_sample=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".tiny-"))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(path)
        except OSError:  # another process finished first: theirs is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
