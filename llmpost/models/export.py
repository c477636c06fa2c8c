"""Export an artifact as a plain Hugging Face model: adapters merged into their base."""

from __future__ import annotations

import shutil
from pathlib import Path

from llmpost.errors import LlmpostError


def export_merged(src, out: Path, trust_remote_code: bool = False) -> Path:
    """Write `src` (a full model or base+adapter) to `out` as one full-precision model."""
    from llmpost.models.load import load_model, load_tokenizer

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise LlmpostError(f"{out} exists and is not empty", hint="choose a new directory or remove it")
    tokenizer = load_tokenizer(src, trust_remote_code)
    model = load_model(src, trust_remote_code=trust_remote_code)
    if src.adapter_path:
        model = model.merge_and_unload()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():  # an empty directory the user made for us
        out.rmdir()
    tmp.rename(out)
    return out
