"""Built-in shapes of common model families, so `llmpost plan` works with no download.

Each entry holds the fields of the model's Hugging Face `config.json` that the
planner reads; the unit tests instantiate every entry on the meta device with
transformers and check the parameter count against the formula in
architecture.py. Keys are hub ids; lookups also accept the part after the slash,
case-insensitively (`qwen2.5-0.5b-instruct`). Instruct variants share their base's shape.
"""

from __future__ import annotations

from typing import Any


def _llama(vocab, hidden, inter, layers, heads, kv, tied, head_dim=None, model_type="llama", **extra) -> dict[str, Any]:
    cfg = {"model_type": model_type, "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inter,
           "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
           "tie_word_embeddings": tied, "dtype": "bfloat16", **extra}
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    return cfg


SIZE_TABLE: dict[str, dict[str, Any]] = {
    # Llama 3.x
    "meta-llama/Llama-3.2-1B": _llama(128256, 2048, 8192, 16, 32, 8, True, head_dim=64),
    "meta-llama/Llama-3.2-3B": _llama(128256, 3072, 8192, 28, 24, 8, True, head_dim=128),
    "meta-llama/Llama-3.1-8B": _llama(128256, 4096, 14336, 32, 32, 8, False),
    # Qwen 2.5 (bias on q/k/v)
    "Qwen/Qwen2.5-0.5B": _llama(151936, 896, 4864, 24, 14, 2, True, model_type="qwen2"),
    "Qwen/Qwen2.5-1.5B": _llama(151936, 1536, 8960, 28, 12, 2, True, model_type="qwen2"),
    "Qwen/Qwen2.5-3B": _llama(151936, 2048, 11008, 36, 16, 2, True, model_type="qwen2"),
    "Qwen/Qwen2.5-7B": _llama(152064, 3584, 18944, 28, 28, 4, False, model_type="qwen2"),
    # Qwen 3 (q/k norms, explicit head_dim)
    "Qwen/Qwen3-0.6B": _llama(151936, 1024, 3072, 28, 16, 8, True, head_dim=128, model_type="qwen3"),
    "Qwen/Qwen3-1.7B": _llama(151936, 2048, 6144, 28, 16, 8, True, head_dim=128, model_type="qwen3"),
    "Qwen/Qwen3-4B": _llama(151936, 2560, 9728, 36, 32, 8, True, head_dim=128, model_type="qwen3"),
    "Qwen/Qwen3-8B": _llama(151936, 4096, 12288, 36, 32, 8, False, head_dim=128, model_type="qwen3"),
    # Mistral
    "mistralai/Mistral-7B-v0.3": _llama(32768, 4096, 14336, 32, 32, 8, False, model_type="mistral"),
    "mistralai/Mistral-7B-v0.1": _llama(32000, 4096, 14336, 32, 32, 8, False, model_type="mistral"),
    # Gemma 2 (four norms per layer, head_dim 256, large vocabulary)
    "google/gemma-2-2b": _llama(256000, 2304, 9216, 26, 8, 4, True, head_dim=256, model_type="gemma2"),
    "google/gemma-2-9b": _llama(256000, 3584, 14336, 42, 16, 8, True, head_dim=256, model_type="gemma2"),
    # Phi-3 (fused qkv_proj and gate_up_proj)
    "microsoft/Phi-3-mini-4k-instruct": _llama(32064, 3072, 8192, 32, 32, 32, False, model_type="phi3"),
    # SmolLM2 (Llama architecture)
    "HuggingFaceTB/SmolLM2-135M": _llama(49152, 576, 1536, 30, 9, 3, True),
    "HuggingFaceTB/SmolLM2-360M": _llama(49152, 960, 2560, 32, 15, 5, True),
    "HuggingFaceTB/SmolLM2-1.7B": _llama(49152, 2048, 8192, 24, 32, 32, True),
}

# Names people type for the same shapes.
ALIASES: dict[str, str] = {
    "meta-llama/Llama-3.2-1B-Instruct": "meta-llama/Llama-3.2-1B",
    "meta-llama/Llama-3.2-3B-Instruct": "meta-llama/Llama-3.2-3B",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B",
    "meta-llama/Meta-Llama-3-8B": "meta-llama/Llama-3.1-8B",
    "meta-llama/Meta-Llama-3-8B-Instruct": "meta-llama/Llama-3.1-8B",
    "Qwen/Qwen2.5-0.5B-Instruct": "Qwen/Qwen2.5-0.5B",
    "Qwen/Qwen2.5-1.5B-Instruct": "Qwen/Qwen2.5-1.5B",
    "Qwen/Qwen2.5-3B-Instruct": "Qwen/Qwen2.5-3B",
    "Qwen/Qwen2.5-7B-Instruct": "Qwen/Qwen2.5-7B",
    "Qwen/Qwen2.5-Math-1.5B": "Qwen/Qwen2.5-1.5B",
    "Qwen/Qwen2.5-Math-7B": "Qwen/Qwen2.5-7B",
    "mistralai/Mistral-7B-Instruct-v0.3": "mistralai/Mistral-7B-v0.3",
    "mistralai/Mistral-7B-Instruct-v0.2": "mistralai/Mistral-7B-v0.1",
    "google/gemma-2-2b-it": "google/gemma-2-2b",
    "google/gemma-2-9b-it": "google/gemma-2-9b",
    "microsoft/Phi-3-mini-128k-instruct": "microsoft/Phi-3-mini-4k-instruct",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "HuggingFaceTB/SmolLM2-135M",
    "HuggingFaceTB/SmolLM2-360M-Instruct": "HuggingFaceTB/SmolLM2-360M",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": "HuggingFaceTB/SmolLM2-1.7B",
}


def lookup(name: str) -> tuple[str, dict[str, Any]] | None:
    """(hub id, config fields) for a known model name, or None."""
    wanted = name.strip().lower()
    for key in list(SIZE_TABLE) + list(ALIASES):
        if wanted in (key.lower(), key.split("/")[-1].lower()):
            canonical = ALIASES.get(key, key)
            return canonical, SIZE_TABLE[canonical]
    return None


def known_names() -> list[str]:
    """The table's hub ids, for help texts and error hints."""
    return list(SIZE_TABLE)
