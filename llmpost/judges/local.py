"""A judge that is a local transformers model: an artifact ref, a local directory or a hub id.

Replies are generated with llmpost's one generation routine (greedy unless a
temperature is set); 4-bit loading (bitsandbytes NF4) keeps a large judge on a
small GPU.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from llmpost.judges.reply import Reply
from llmpost.judges.settings import JudgeSettings

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")


class LocalBackend:
    """Generate judge replies with a model loaded in this process."""

    def __init__(self, src, settings: JudgeSettings):
        from llmpost.models.load import load_model, load_tokenizer

        self.src = src
        self.settings = settings
        self.name = f"local:{src.ref}"
        self.tokenizer = load_tokenizer(src, settings.trust_remote_code)
        self.model = on_accelerator(load_model(src, qlora=settings.load_in_4bit,
                                               trust_remote_code=settings.trust_remote_code))

    def identity(self) -> dict:
        s = self.settings
        return {"backend": "local", "model": model_identity(self.src), "max_new_tokens": s.max_new_tokens,
                "temperature": s.temperature, "4bit": s.load_in_4bit}

    def complete(self, conversations: list[list[dict]]) -> list[Reply]:
        """Greedy (or sampled) replies; longest prompts first so each batch pads little."""
        from llmpost.evaluation.generation import chat_prompt, generate

        prompt_tokens = [len(self.tokenizer(chat_prompt(self.tokenizer, c), add_special_tokens=False).input_ids)
                         for c in conversations]
        order = sorted(range(len(conversations)), key=lambda i: -prompt_tokens[i])
        s = self.settings
        texts = generate(self.model, self.tokenizer, [conversations[i] for i in order],
                         max_new_tokens=s.max_new_tokens, batch_size=s.batch_size,
                         do_sample=s.temperature > 0, temperature=s.temperature or 1.0)
        replies: list[Reply] = [Reply(None)] * len(conversations)
        for i, text in zip(order, texts, strict=True):
            completion = len(self.tokenizer(text, add_special_tokens=False).input_ids)
            replies[i] = Reply(text.strip(), prompt_tokens[i], completion)
        return replies


def on_accelerator(model):
    """`model` on the GPU when there is one (a 4-bit model was placed when it was loaded)."""
    import torch

    if torch.cuda.is_available() and not getattr(model, "is_loaded_in_4bit", False):
        return model.to("cuda")
    return model


def model_identity(src) -> str:
    """A string that changes whenever the judge's weights may have changed."""
    if src.artifact is not None:
        return f"artifact:{src.artifact.id}"
    if src.is_tiny:
        from llmpost.models.tiny import TINY_VERSION

        return f"tiny-v{TINY_VERSION}"
    where = [p for p in (src.adapter_path, src.path) if p]
    if all(Path(p).is_dir() for p in where):
        return "dir:" + files_signature([Path(p) for p in where])
    return f"hub:{src.path}@{src.revision or 'main'}" + (f"+{src.adapter_path}" if src.adapter_path else "")


def files_signature(dirs: list[Path]) -> str:
    """Paths, sizes and modification times of the model files in `dirs` (cheap: no hashing of weights)."""
    digest = hashlib.sha256()
    for d in dirs:
        for f in sorted(d.iterdir()):
            if f.is_file() and f.suffix in WEIGHT_SUFFIXES:
                stat = f.stat()
                digest.update(f"{f.resolve()}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()
