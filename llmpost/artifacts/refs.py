"""Artifact names and the `NAME[@vN|@latest]` ref syntax.

Only the spelling lives here; looking a ref up in a store is `Store.resolve`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmpost.errors import ArtifactError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
VERSION_DIR_RE = re.compile(r"v([0-9]+)")
_VERSION_SPEC_RE = re.compile(r"v([0-9]+)|latest")
MAX_NAME_LEN = 128


@dataclass(frozen=True)
class NameRef:
    """A parsed `NAME`, `NAME@vN` or `NAME@latest`; `version` None means latest."""

    name: str
    version: int | None
    explicit: bool  # True when the ref carried an `@...` part

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@v{self.version}"


def is_valid_name(name: str) -> bool:
    """True when `name` can name an artifact (it becomes a directory name)."""
    return len(name) <= MAX_NAME_LEN and NAME_RE.fullmatch(name) is not None


def validate_name(name: str) -> str:
    """Return `name`, or raise ArtifactError saying what an artifact name may contain."""
    if not is_valid_name(name):
        raise ArtifactError(
            f"invalid artifact name {name!r}",
            "use letters, digits, '.', '_' and '-', starting with a letter or digit "
            f"(at most {MAX_NAME_LEN} characters), e.g. `sft-tiny`",
        )
    return name


def parse_ref(ref: str) -> NameRef | None:
    """Parse `NAME`, `NAME@vN` or `NAME@latest`; None when `ref` has another shape.

    None is not an error: the ref may be a path or a Hugging Face id.
    """
    name, at, spec = ref.partition("@")
    if not is_valid_name(name):
        return None
    if not at:
        return NameRef(name, None, explicit=False)
    match = _VERSION_SPEC_RE.fullmatch(spec)
    if match is None:
        return None
    version = int(match.group(1)) if match.group(1) else None
    return NameRef(name, version, explicit=True)


def version_of_dir(dirname: str) -> int | None:
    """N for a directory called `vN`, else None."""
    match = VERSION_DIR_RE.fullmatch(dirname)
    return int(match.group(1)) if match else None
