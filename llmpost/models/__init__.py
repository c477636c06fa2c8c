"""Models: resolve references, load bases/tokenizers/adapters, LoRA/QLoRA, the built-in `tiny`, export, Hub upload."""
