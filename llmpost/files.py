"""Replacing a file so that a reader sees the old one or the whole new one, never half of one.

A stage killed mid-write (Ctrl-C, out of memory, a lost machine) must leave what was there:
a manifest, the `latest` link, a checkpoint, kept answers. Each is written to a temporary
name beside its target and renamed over it, which POSIX makes atomic.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path, *, durable: bool = False) -> Iterator[Path]:
    """A temporary path beside `path`; whatever the block writes there is renamed over `path` when it ends.

    If the block raises, `path` is left as it was and the temporary is removed. `durable` also
    flushes the file and the rename to disk, for what must survive a power cut (manifests, `latest`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if durable and not tmp.is_symlink():
            fsync_file(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()


def write_text(path: Path, text: str, *, durable: bool = False) -> Path:
    """Write `text` to `path` (UTF-8) through `replacing`."""
    with replacing(path, durable=durable) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (a rename) to disk; best effort where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
