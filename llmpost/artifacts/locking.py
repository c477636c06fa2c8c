"""File locks for the artifact store (POSIX `fcntl.flock`).

Two locks live here:

- the per-name lock (`<root>/.locks/<name>.lock`), held only for the instant a
  finished version is numbered and moved into place, so that two runs writing the
  same name never pick the same version;
- a lock on an in-flight work directory under `<root>/.tmp/`, held for as long as a
  stage writes into it, so that `gc` can tell a live run from a crashed one.

flock locks belong to an open file and vanish when the process dies, so a crash
or kill -9 never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def name_lock(root: Path, name: str) -> Iterator[None]:
    """Hold the exclusive lock for artifact `name` in the store at `root`."""
    locks = root / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        # Closing the descriptor releases the lock.
        os.close(fd)


def hold_dir_lock(path: Path) -> int:
    """Take a shared lock on directory `path`; return the descriptor that holds it.

    The lock lasts until the descriptor is closed (or the process exits).
    """
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def dir_in_use(path: Path) -> bool:
    """True when some process holds a lock on directory `path` (see `hold_dir_lock`)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
