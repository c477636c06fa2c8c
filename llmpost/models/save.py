"""Save a trained model into an artifact's model/ dir so plain transformers/peft can load it."""

from __future__ import annotations

import json
from pathlib import Path


def save_model(model, tokenizer, out: Path, src) -> None:
    """Full weights, or a PEFT adapter whose adapter_config.json names the real base.

    `src` is the ModelSource the model was loaded from; its `path` is what
    `from_pretrained` needs for the base (a local dir or a hub id).
    """
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    adapter_cfg = out / "adapter_config.json"
    if adapter_cfg.is_file():
        cfg = json.loads(adapter_cfg.read_text())
        cfg["base_model_name_or_path"] = src.path
        if src.revision:
            cfg["revision"] = src.revision
        adapter_cfg.write_text(json.dumps(cfg, indent=2))
