"""Resolve a model reference and load it, with LoRA/QLoRA when asked.

A reference is `tiny` (built-in), an artifact ref (`NAME`, `NAME@vN`, a version
dir), a local Hugging Face directory, a GGUF file (or a directory holding one; `smollm2`
names a packaged one), or a hub id. An adapter artifact names its
base in `adapter_config.json` (and in its manifest), so loading it loads the base
underneath transparently.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llmpost.errors import ModelError
from llmpost.models.gguf import PACKAGED, converted, gguf_file_in, packaged_gguf

TINY = "tiny"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, resolved once and recorded in the manifest."""

    ref: str  # what the user wrote
    path: str  # what from_pretrained gets for the base: a directory or a hub id
    base_id: str  # the root model as a user names it: "tiny", a hub id or a path
    adapter_path: str | None = None  # set when `ref` is a PEFT adapter on top of `path`
    artifact: Any = None  # the llmpost Artifact when `ref` is one
    revision: str | None = None
    gguf: dict | None = None  # {"file", "sha256"} when the base was converted from a GGUF file

    @property
    def is_tiny(self) -> bool:
        return self.base_id == TINY

    def describe(self) -> dict:
        """The `base_model` record of a manifest (`path` is where it was found on this machine)."""
        revision = self.revision
        if self.is_tiny:
            from llmpost.models.tiny import TINY_VERSION

            revision = f"builtin-v{TINY_VERSION}"
        record = {"id": self.base_id, "revision": revision, "path": self.path}
        return record | ({"gguf": self.gguf} if self.gguf else {})


def resolve_model(ref: str, store=None) -> ModelSource:
    """Turn a user's model reference into a `ModelSource`, or raise ModelError with a hint."""
    if ref == TINY:
        from llmpost.models.tiny import tiny_path

        return ModelSource(ref=ref, path=str(tiny_path()), base_id=TINY)
    if ref in PACKAGED:
        return from_gguf(ref, packaged_gguf(ref))
    artifact = store.try_resolve(ref) if store is not None else None
    if artifact is not None:
        return from_directory(ref, artifact.path / "model", artifact)
    path = Path(ref).expanduser()
    if gguf := gguf_file_in(path):
        return from_gguf(ref, gguf)
    if path.exists():
        return from_directory(ref, path, None)
    return from_hub(ref)


def from_gguf(ref: str, gguf: Path) -> ModelSource:
    directory, origin = converted(gguf)
    return ModelSource(ref=ref, path=str(directory), base_id=ref if ref in PACKAGED else str(gguf), gguf=origin)


def from_directory(ref: str, path: Path, artifact) -> ModelSource:
    if (path / "adapter_config.json").is_file():
        base = adapter_base(path, artifact)
        return ModelSource(ref=ref, path=base.path, base_id=base.base_id, adapter_path=str(path),
                           artifact=artifact, revision=base.revision, gguf=base.gguf)
    if (path / "config.json").is_file():
        source = ModelSource(ref=ref, path=str(path), base_id=str(path), artifact=artifact)
        return with_root(source, artifact)  # an artifact of a full model keeps its own root lineage
    raise ModelError(f"{ref!r} is not a model directory (no config.json or adapter_config.json in {path})",
                     hint="point at a Hugging Face model dir, an llmpost model artifact, or use --model tiny")


def adapter_base(adapter_dir: Path, artifact) -> ModelSource:
    """The model under an adapter: the one it was trained on, named in adapter_config.json.

    That may be a full-model artifact (a LoRA reward model on a fully fine-tuned SFT), so
    the manifest's `base_model`, the root of the lineage, is only the fallback: for a
    moved store whose recorded path is gone, or a config that names no base.
    """
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    trained_on = cfg.get("base_model_name_or_path")
    root = root_record(artifact)
    if trained_on and Path(trained_on).is_dir():
        return with_root(resolve_model(trained_on), artifact)
    if root.get("id"):
        if root["id"] == TINY:
            return resolve_model(TINY)
        if root.get("path") and Path(root["path"]).exists():
            found = ModelSource(ref=root["id"], path=root["path"], base_id=root["id"], revision=root.get("revision"))
            return with_root(found, artifact)
        return resolve_model(root["id"])
    if not trained_on:
        raise ModelError(f"adapter {adapter_dir} does not name its base model",
                         hint="set base_model_name_or_path in adapter_config.json")
    return resolve_model(trained_on)


def with_root(source: ModelSource, artifact) -> ModelSource:
    """`source` named after the root of `artifact`'s lineage (its manifest's `base_model`), when it records one."""
    root = root_record(artifact)
    if not root.get("id"):
        return source
    return replace(source, base_id=root["id"], gguf=root.get("gguf", source.gguf))


def root_record(artifact) -> dict:
    """The `base_model` record of `artifact`'s manifest: the root of its lineage ({} for no artifact or none)."""
    return (artifact.manifest.get("base_model") or {}) if artifact is not None else {}


def from_hub(ref: str) -> ModelSource:
    name, _, revision = ref.partition("@")
    if name.count("/") != 1 or name.startswith(("/", ".")):
        raise ModelError(f"unknown model {ref!r}: not 'tiny', not an artifact, not a local directory",
                         hint="use --model tiny (or smollm2), an artifact name from `llmpost ls`, a local path or .gguf file, or a hub id like Qwen/Qwen2.5-0.5B")
    if os.environ.get("HF_HUB_OFFLINE") == "1" and not hub_cached(name):
        raise ModelError(f"model {ref!r} is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1)",
                         hint="download it first (`hf download NAME`) on a machine with network, or pass a local path")
    return ModelSource(ref=ref, path=name, base_id=name, revision=revision or None)


def hub_cached(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


def load_tokenizer(src: ModelSource, trust_remote_code: bool = False):
    """The tokenizer saved with the adapter/model if any, else the base's; always with a pad token."""
    from transformers import AutoTokenizer

    where = src.adapter_path if src.adapter_path and has_tokenizer(Path(src.adapter_path)) else src.path
    try:
        tok = AutoTokenizer.from_pretrained(where, revision=src.revision, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise ModelError(f"cannot load the tokenizer of {src.ref!r}: {exc}", hint="check the model reference") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def has_tokenizer(path: Path) -> bool:
    return (path / "tokenizer_config.json").is_file()


def quantization_config(compute_dtype=None):
    """QLoRA's 4-bit base: NF4 with double quantisation (bitsandbytes)."""
    import torch
    from transformers import BitsAndBytesConfig

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelError("--qlora needs bitsandbytes", hint="pip install bitsandbytes (or `pip install llmpost[qlora]`)") from None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype or (torch.bfloat16 if torch.cuda.is_available() else torch.float32),
        bnb_4bit_quant_storage=torch.uint8,
    )


def count_4bit_layers(model) -> int:
    """How many linear layers run in 4-bit (bitsandbytes Linear4bit): proof that --qlora quantised the base."""
    import bitsandbytes as bnb

    return sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())


AUTO_CLASSES = {"causal": "AutoModelForCausalLM", "seqcls": "AutoModelForSequenceClassification",
                "tokcls": "AutoModelForTokenClassification"}
# The classification heads a LoRA adapter trains and saves whole (the head is new: there is nothing to adapt).
HEAD_TASKS = ("SEQ_CLS", "TOKEN_CLS")


def load_model(src: ModelSource, *, qlora: bool = False, kind: str = "causal", trainable_adapter: bool = False,
               trust_remote_code: bool = False, num_labels: int = 1, dtype=None):
    """Load the base (4-bit under `qlora`) and, when `src` is an adapter, the adapter on top.

    `kind` is "causal" (AutoModelForCausalLM), "seqcls" (AutoModelForSequenceClassification
    with `num_labels` outputs, for reward models) or "tokcls" (AutoModelForTokenClassification
    with `num_labels` outputs, for process reward models).
    """
    import transformers

    auto = getattr(transformers, AUTO_CLASSES[kind])
    kwargs: dict[str, Any] = {"revision": src.revision, "trust_remote_code": trust_remote_code}
    if kind != "causal":
        kwargs["num_labels"] = num_labels
    if dtype is not None:
        kwargs["dtype"] = dtype
    if qlora:
        kwargs["quantization_config"] = quantization_config()
        kwargs["device_map"] = {"": device_index()}
    try:
        model = auto.from_pretrained(src.path, **kwargs)
    except OSError as exc:
        raise ModelError(f"cannot load model {src.ref!r}: {exc}", hint="check the model reference; offline, only local paths and cached hub models load") from None
    if kind != "causal" and model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    if src.adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, src.adapter_path, is_trainable=trainable_adapter)
    return model


def device_index():
    """The device a single-process run places a quantised model on."""
    import torch

    if torch.cuda.is_available():
        return int(os.environ.get("LOCAL_RANK", 0))
    return "cpu"


def add_lora(model, settings, task_type: str = "CAUSAL_LM", qlora: bool = False):
    """Wrap `model` in a new trainable LoRA adapter (preparing a 4-bit base for training first)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=settings.target_modules, task_type=task_type,
        modules_to_save=["score"] if task_type in HEAD_TASKS else None,
    )
    return get_peft_model(model, config)


def lora_config(settings, task_type: str = "CAUSAL_LM"):
    """A peft LoraConfig from llmpost's settings, for trainers that wrap the model themselves."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=settings.target_modules, task_type=task_type,
        modules_to_save=["score"] if task_type in HEAD_TASKS else None,
    )
