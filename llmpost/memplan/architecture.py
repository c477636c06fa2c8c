"""A model's shape, read without loading any weights: from a config.json, an artifact, or the size table.

`Architecture` knows the parameter count and the linear layers of one decoder
block (what LoRA adapts and what 4-bit quantisation packs). It covers the
Llama-style decoder families (llama, mistral, qwen2, qwen3, gemma/gemma2, phi3,
and others that share their layout); other `model_type`s are read the same way
and flagged as approximate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmpost.errors import ModelError
from llmpost.memplan.sizes import known_names, lookup

# model_types whose block layout the formulas below describe exactly (the unit tests check them).
EXACT_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3"}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


@dataclass(frozen=True)
class Linear:
    name: str
    d_in: int
    d_out: int
    bias: bool = False

    @property
    def params(self) -> int:
        return self.d_in * self.d_out + (self.d_out if self.bias else 0)


@dataclass(frozen=True)
class Architecture:
    """The shape of a decoder-only transformer, enough to size its memory."""

    name: str
    model_type: str
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    dtype: str = "bfloat16"  # what from_pretrained(dtype="auto") loads: the checkpoint's dtype
    source: str = ""  # where the shape came from (config.json path, size table, ...)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def exact(self) -> bool:
        return self.model_type in EXACT_TYPES

    @property
    def weight_bytes(self) -> int:
        return DTYPE_BYTES.get(self.dtype, 2)

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def norms_per_layer(self) -> int:
        return 4 if self.model_type == "gemma2" else 2

    def block_linears(self) -> list[Linear]:
        """The linear layers of one decoder block, as the model names them."""
        h, i = self.hidden, self.intermediate
        qkv_bias = self.model_type == "qwen2" or bool(self.extra.get("attention_bias"))
        mlp_bias = bool(self.extra.get("mlp_bias"))
        if self.model_type == "phi3":  # fused projections
            return [Linear("qkv_proj", h, self.q_dim + 2 * self.kv_dim), Linear("o_proj", self.q_dim, h),
                    Linear("gate_up_proj", h, 2 * i), Linear("down_proj", i, h)]
        o_bias = bool(self.extra.get("attention_bias"))
        return [
            Linear("q_proj", h, self.q_dim, qkv_bias), Linear("k_proj", h, self.kv_dim, qkv_bias),
            Linear("v_proj", h, self.kv_dim, qkv_bias), Linear("o_proj", self.q_dim, h, o_bias),
            Linear("gate_proj", h, i, mlp_bias), Linear("up_proj", h, i, mlp_bias), Linear("down_proj", i, h, mlp_bias),
        ]

    @property
    def block_linear_params(self) -> int:
        """Parameters in one block's linear layers (the part 4-bit quantisation packs)."""
        return sum(lin.params for lin in self.block_linears())

    @property
    def block_other_params(self) -> int:
        """Norm weights in one block (q/k norms too for qwen3)."""
        extra = 2 * self.head_dim if self.model_type == "qwen3" else 0
        return self.norms_per_layer * self.hidden + extra

    @property
    def embedding_params(self) -> int:
        """Input embedding plus an untied LM head."""
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        """Total parameters of the causal-LM model."""
        return self.embedding_params + self.layers * (self.block_linear_params + self.block_other_params) + self.hidden

    def lora_params(self, r: int, targets: list[str] | str) -> int:
        """Trainable parameters of a rank-`r` LoRA adapter on `targets` ('all-linear' or module names)."""
        return self.layers * sum(r * (lin.d_in + lin.d_out) for lin in self.block_linears()
                                 if targets == "all-linear" or lin.name in targets)

    def describe(self) -> str:
        approx = "" if self.exact else f" (model_type {self.model_type!r}: layout approximated as Llama-like)"
        size = f"{self.params / 1e9:.3g}B" if self.params >= 1e9 else f"{self.params / 1e6:.3g}M"
        return (f"{self.name}: {size} params, {self.layers} layers, hidden {self.hidden}, "
                f"vocab {self.vocab}, {self.dtype}{approx}")


def from_config(cfg: dict[str, Any], name: str, source: str) -> Architecture:
    """An Architecture from the fields of a Hugging Face config.json (text config of multimodal ones)."""
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"], "dtype": cfg.get("dtype") or cfg.get("torch_dtype")}
    try:
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        arch = Architecture(
            name=name,
            model_type=str(cfg.get("model_type", "llama")),
            vocab=int(cfg["vocab_size"]),
            hidden=hidden,
            intermediate=int(cfg.get("intermediate_size") or 4 * hidden),
            layers=int(cfg["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            tied=bool(cfg.get("tie_word_embeddings", cfg.get("model_type", "").startswith("gemma"))),
            dtype=str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32"),
            source=source,
            extra={k: cfg[k] for k in ("attention_bias", "mlp_bias") if k in cfg},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{source}: not a decoder config the planner can read (missing or bad {exc})",
                         hint="pass a Hugging Face config.json of a causal LM") from None
    return arch


def tiny_architecture() -> Architecture:
    """The built-in `tiny` model's shape, computed the way models/tiny.py builds it (no torch needed)."""
    from llmpost.models.tiny import ARCH, vocabulary

    cfg = {**ARCH, "model_type": "llama", "vocab_size": len(vocabulary()), "dtype": "float32"}
    return from_config(cfg, "tiny", "built-in tiny model")


def find_architecture(ref: str, store=None) -> Architecture:
    """The shape of model `ref`: tiny, the size table, an artifact, a local dir/config.json, or the HF cache."""
    if ref == "tiny":
        return tiny_architecture()
    known = lookup(ref)
    if known is not None:
        hub_id, cfg = known
        return from_config(cfg, hub_id, "built-in size table")
    gguf = gguf_config(ref)
    if gguf is not None:
        return from_config(json.loads(gguf.read_text()), ref, str(gguf))
    config_path = local_config(ref, store)
    if config_path is not None:
        return from_config(json.loads(config_path.read_text()), ref, str(config_path))
    raise ModelError(
        f"cannot size model {ref!r} offline: not 'tiny', not in the size table, no local config.json",
        hint="pass --model-config path/to/config.json, or one of: " + ", ".join(known_names()),
    )


def gguf_config(ref: str) -> Path | None:
    """The config.json of a GGUF model (`smollm2`, a .gguf file or a directory holding one), converted once as
    every stage converts it (`models/gguf.py`); None when `ref` is no GGUF model."""
    from llmpost.models.gguf import PACKAGED, converted, gguf_file_in, packaged_gguf

    gguf = packaged_gguf(ref) if ref in PACKAGED else gguf_file_in(Path(ref).expanduser())
    return converted(gguf)[0] / "config.json" if gguf is not None else None


def local_config(ref: str, store=None) -> Path | None:
    """The config.json behind `ref` when it is on this machine: artifact, directory, file, or HF cache."""
    path = Path(ref).expanduser()
    if path.is_file() and path.name.endswith(".json"):
        return path
    artifact = store.try_resolve(ref) if store is not None else None
    if artifact is not None:
        path = artifact.path / "model"
    if (path / "config.json").is_file():
        return path / "config.json"
    if (path / "adapter_config.json").is_file():  # an adapter: size its base
        base = adapter_base_ref(path, artifact)
        if base == "tiny":
            from llmpost.models.tiny import tiny_path

            return tiny_path() / "config.json"
        return local_config(base, store) if base else None
    return cached_hub_config(ref)


def adapter_base_ref(adapter_dir: Path, artifact) -> str | None:
    if artifact is not None and (artifact.manifest.get("base_model") or {}).get("id"):
        base = artifact.manifest["base_model"]
        return base["id"] if base["id"] == "tiny" else (base.get("path") or base["id"])
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    return cfg.get("base_model_name_or_path")


def cached_hub_config(ref: str) -> Path | None:
    """config.json of a hub model already in the local Hugging Face cache (never downloads)."""
    name = ref.partition("@")[0]
    if name.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json")
    except Exception:
        return None
    return Path(found) if isinstance(found, str) else None
