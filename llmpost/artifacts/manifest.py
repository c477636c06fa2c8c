"""The artifact manifest: reading, writing and hashing `manifest.json`.

The manifest is the one file that makes a directory an artifact. It is written
last, atomically, so its presence means everything else in the directory is
complete. What the store fills in is in `store.Pending.finalize`; the stage runner
adds the rest (stage, config, parents, datasets, metrics, ...).
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from llmpost.errors import ArtifactError
from llmpost.files import write_text

SCHEMA = "llmpost.artifact/1"
MANIFEST_FILE = "manifest.json"

# Recorded in every manifest so a result can be traced to the libraries that made it.
TRACKED_PACKAGES = (
    "llmpost",
    "torch",
    "transformers",
    "trl",
    "peft",
    "bitsandbytes",
    "datasets",
    "accelerate",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a result; None for a missing one.

    Reads package metadata only: importing torch or transformers here would make
    every store command slow.
    """
    versions: dict[str, str | None] = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    if versions["llmpost"] is None:
        # Running from a source tree that was never pip-installed.
        from llmpost import __version__

        versions["llmpost"] = __version__
    return versions


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal data gives equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_json(obj: Any) -> str:
    """sha256 hex digest of `obj` as canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest_path(path: str | Path) -> Path:
    """The manifest file for `path`, which may be the version directory or the file itself."""
    path = Path(path)
    return path if path.name == MANIFEST_FILE and path.is_file() else path / MANIFEST_FILE


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Load a manifest from a version directory (or from the manifest file itself)."""
    file = manifest_path(path)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(
            f"{file.parent} is not an artifact: it has no {MANIFEST_FILE}",
            "an unfinished or interrupted run leaves no manifest; see `llmpost ls` for finished ones",
        ) from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot read {file}: {e}", "the manifest must be a JSON object") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"cannot read {file}: not a JSON object", "the manifest must be a JSON object")
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write `directory/manifest.json` atomically and durably: a reader sees no manifest or the whole one."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
    return write_text(directory / MANIFEST_FILE, text, durable=True)
