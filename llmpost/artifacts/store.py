"""The artifact store: immutable, versioned output directories of llmpost stages.

Layout under the store root (`--store`, `$LLMPOST_STORE`, default `./artifacts`):

    <name>/v1/ v2/ ...     finished versions; each holds manifest.json, written last
    <name>/latest          relative symlink to the newest finished `vN`
    .tmp/<random>/         in-flight work directories; never read as artifacts
    .locks/<name>.lock     flock files that serialise version numbering

A stage writes into `Pending.dir` (under `.tmp/`) and `Pending.finalize` publishes
it: manifest written, directory renamed into place, `latest` repointed. A crash,
kill or Ctrl-C before that leaves nothing visible and never moves `latest`.

Looking artifacts up (`resolve`, `list`, `get_by_id`, ...) and `gc` live here too;
ref spelling is in `refs.py`, the manifest file format in `manifest.py`.
"""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmpost.artifacts.locking import dir_in_use, hold_dir_lock, name_lock
from llmpost.artifacts.manifest import (
    MANIFEST_FILE,
    SCHEMA,
    read_manifest,
    sha256_file,
    write_manifest,
)
from llmpost.artifacts.refs import NameRef, is_valid_name, parse_ref, validate_name, version_of_dir
from llmpost.errors import ArtifactError
from llmpost.files import fsync_dir, replacing

DEFAULT_ROOT = "./artifacts"
LATEST = "latest"
TMP_DIR = ".tmp"
# A work directory this old, whose owner no longer holds its lock, is a crashed run.
STALE_TMP_AGE_S = 24 * 3600
REF_SYNTAX_HINT = "a ref is NAME, NAME@vN, NAME@latest, or the path of a version directory"


@dataclass(frozen=True)
class Artifact:
    """One finished version of a named artifact."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any] = field(compare=False, repr=False)

    @classmethod
    def from_dir(cls, path: str | Path) -> Artifact:
        """Load the artifact whose version directory is `path`."""
        path = Path(path)
        manifest = read_manifest(path)
        try:
            name, version = str(manifest["name"]), int(manifest["version"])
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(
                f"{path / MANIFEST_FILE} has no valid name/version",
                "the manifest was edited or not written by llmpost; restore it or remove the directory",
            ) from None
        if manifest.get("status") != "finished":
            raise ArtifactError(
                f"{path} is not a finished artifact (status {manifest.get('status')!r})",
                "see `llmpost ls` for finished artifacts",
            )
        return cls(name, version, path, manifest)

    @property
    def ref(self) -> str:
        """`name@vN`: the ref that names exactly this version."""
        return f"{self.name}@v{self.version}"

    @property
    def id(self) -> str:
        """The artifact's unique id (uuid4 hex), stable across renames and copies."""
        return self.manifest["id"]

    @property
    def manifest_sha256(self) -> str:
        """sha256 of manifest.json as stored: children record it to notice later edits."""
        return sha256_file(self.path / MANIFEST_FILE)

    @property
    def model_dir(self) -> Path:
        """Where a training stage keeps the model (Hugging Face format)."""
        return self.path / "model"

    def as_parent(self) -> dict[str, str]:
        """The entry a child puts in its manifest's `parents` list."""
        return {"id": self.id, "ref": self.ref, "manifest_sha256": self.manifest_sha256}


class Pending:
    """A version being written: a fresh work directory under `<root>/.tmp/`.

    Use as a context manager; leaving it without `finalize` (normally or by any
    exception, KeyboardInterrupt included) deletes the work directory.
    """

    def __init__(self, store: Store, name: str, dir: Path):
        self.store = store
        self.name = name
        self.dir = dir
        # The manifest's id, known from the start so that what reports on the run (an experiment
        # tracker) can name the artifact it becomes.
        self.id = uuid.uuid4().hex
        self.artifact: Artifact | None = None
        # Tells `gc` this directory belongs to a live run, however long it runs.
        self._lock_fd: int | None = hold_dir_lock(dir)

    def __enter__(self) -> Pending:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.artifact is None:
            self.abort()
        return False

    def expected_version(self) -> int:
        """The version this will most likely be published as: the next free number of `name` now.

        Versions are numbered when published, so a run of the same name that finishes first takes it.
        """
        return self.store._next_version(self.name)

    def finalize(self, fields: dict[str, Any]) -> Artifact:
        """Publish the work directory as the next version of `name` and return it.

        `fields` (stage, config, parents, metrics, ...) go into the manifest; the
        store's own keys (schema, id, name, version, ref, status, finished_at) win
        over any of the same name.
        """
        if self.artifact is not None:
            raise RuntimeError(f"{self.artifact.ref} is already finalized")
        if not self.dir.is_dir():
            raise RuntimeError(f"work directory {self.dir} is gone (aborted?)")
        name_dir = self.store.root / self.name
        with name_lock(self.store.root, self.name):
            version = self.store._next_version(self.name)
            write_manifest(self.dir, _manifest(self.id, self.name, version, fields))
            target = name_dir / f"v{version}"
            with _sigint_deferred():
                # Ctrl-C here would leave a version published but `latest` unmoved.
                name_dir.mkdir(parents=True, exist_ok=True)
                os.rename(self.dir, target)
                fsync_dir(name_dir)
                self.store._point_latest(self.name, version)
        self._release()
        self.artifact = Artifact.from_dir(target)
        return self.artifact

    def abort(self) -> None:
        """Delete the work directory; nothing is published."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class Store:
    """An artifact store rooted at a directory (created on first write)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().absolute()

    @classmethod
    def default(cls, root: str | Path | None = None) -> Store:
        """The store at `root`, else at `$LLMPOST_STORE`, else at `./artifacts`."""
        return cls(root or os.environ.get("LLMPOST_STORE") or DEFAULT_ROOT)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- writing -----------------------------------------------------------

    def begin(self, name: str) -> Pending:
        """Start writing a new version of `name`; see `Pending`."""
        validate_name(name)
        tmp_root = self.root / TMP_DIR
        tmp_root.mkdir(parents=True, exist_ok=True)
        return Pending(self, name, Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_root)))

    def _next_version(self, name: str) -> int:
        # Count every vN entry, finished or not, so a number is never handed out twice.
        return max(self._version_numbers(name), default=0) + 1

    def _point_latest(self, name: str, version: int) -> None:
        with replacing(self.root / name / LATEST, durable=True) as link:
            os.symlink(f"v{version}", link)

    # -- reading -----------------------------------------------------------

    def names(self) -> list[str]:
        """Names that have a directory in the store, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_valid_name(p.name))

    def list(self, name: str | None = None) -> list[Artifact]:
        """Finished versions (of `name`, or of every name), sorted by name then version."""
        names = [validate_name(name)] if name is not None else self.names()
        found: list[Artifact] = []
        for each in names:
            for version in sorted(self._version_numbers(each)):
                path = self.root / each / f"v{version}"
                if (path / MANIFEST_FILE).is_file():
                    try:
                        found.append(Artifact.from_dir(path))
                    except ArtifactError:
                        continue  # a damaged manifest must not hide every other artifact
        return found

    def latest_version(self, name: str) -> int | None:
        """The version `name@latest` points to, or None when there is no finished one."""
        try:
            version = version_of_dir(os.readlink(self.root / name / LATEST))
        except OSError:
            version = None
        if version is not None and (self.root / name / f"v{version}" / MANIFEST_FILE).is_file():
            return version
        # No usable link (e.g. killed between publishing and linking): newest finished wins.
        finished = [a.version for a in self.list(name)]
        return max(finished, default=None)

    def resolve(self, ref: str | Path) -> Artifact:
        """The artifact `ref` names: NAME, NAME@vN, NAME@latest, or a path.

        A path may be a version directory, its `model/` subdirectory, or a name
        directory (meaning its latest). Raises ArtifactError with a hint otherwise.
        """
        artifact = self.try_resolve(ref)
        if artifact is None:
            raise self._not_found(str(ref))
        return artifact

    def try_resolve(self, ref: str | Path) -> Artifact | None:
        """Like `resolve`, but None when `ref` is not an artifact ref at all.

        "tiny" or "Qwen/Qwen2.5-0.5B" give None so callers can try a model id next;
        a ref that is clearly ours but broken ("sft@v9", a known name with no such
        version) still raises.
        """
        ref = str(ref)
        parsed = parse_ref(ref)
        if parsed is not None and (self.root / parsed.name).is_dir():
            return self._resolve_name(parsed)
        if parsed is not None and parsed.explicit:
            raise self._unknown_name(parsed.name)
        return _artifact_at_path(Path(ref))

    def get_by_id(self, id: str) -> Artifact | None:
        """The finished artifact with manifest id `id`, or None."""
        return next((a for a in self.list() if a.id == id), None)

    def find_by_fingerprint(self, name: str | None, fingerprint: str) -> Artifact | None:
        """The newest finished artifact (of `name`, or any) with this fingerprint, or None."""
        matches = [a for a in self.list(name) if a.manifest.get("fingerprint") == fingerprint]
        return max(matches, key=lambda a: (str(a.manifest.get("finished_at", "")), a.version), default=None)

    def _version_numbers(self, name: str) -> list[int]:
        name_dir = self.root / name
        if not name_dir.is_dir():
            return []
        numbers = (version_of_dir(p.name) for p in name_dir.iterdir())
        return [n for n in numbers if n is not None]

    def _resolve_name(self, parsed: NameRef) -> Artifact:
        version = parsed.version
        if version is None:
            version = self.latest_version(parsed.name)
            if version is None:
                raise ArtifactError(
                    f"`{parsed.name}` has no finished version in {self.root}",
                    "its runs were interrupted or are still running; see `llmpost ls`",
                )
        path = self.root / parsed.name / f"v{version}"
        if not (path / MANIFEST_FILE).is_file():
            raise self._unknown_version(parsed.name, version)
        return Artifact.from_dir(path)

    # -- errors --------------------------------------------------------------

    def _not_found(self, ref: str) -> ArtifactError:
        parsed = parse_ref(ref)
        if parsed is not None:
            return self._unknown_name(parsed.name)
        if Path(ref).exists():
            return ArtifactError(
                f"{ref} is not an artifact: it has no {MANIFEST_FILE}",
                "an interrupted run leaves no manifest; `llmpost ls` lists finished artifacts",
            )
        if "@" in ref:
            return ArtifactError(
                f"cannot read ref `{ref}`", "write versions as NAME@vN or NAME@latest, e.g. sft@v2"
            )
        return ArtifactError(
            f"no artifact `{ref}`: not a name in {self.root} and not a path", REF_SYNTAX_HINT
        )

    def _unknown_name(self, name: str) -> ArtifactError:
        names = self.names()
        if not names:
            hint = f"the store {self.root} is empty; pass --store or set LLMPOST_STORE to the store that holds it"
        else:
            close = difflib.get_close_matches(name, names, n=1)
            shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            hint = (f"did you mean `{close[0]}`? " if close else "") + f"known: {shown} (see `llmpost ls`)"
        return ArtifactError(f"no artifact named `{name}` in {self.root}", hint)

    def _unknown_version(self, name: str, version: int) -> ArtifactError:
        finished = [f"v{a.version}" for a in self.list(name)]
        have = f"has {', '.join(finished)}" if finished else "has no finished version"
        return ArtifactError(
            f"no version v{version} of `{name}`", f"`{name}` {have}; see `llmpost ls {name}`"
        )

    # -- garbage collection --------------------------------------------------

    def gc(self, keep: int = 1, dry_run: bool = False) -> list[Artifact]:
        """Remove old versions; return what was (or, with dry_run, would be) removed.

        Per name, `latest` and the newest `keep` versions stay, and so does every
        ancestor (by parent id) of anything that stays. Work directories of crashed
        runs older than a day go too.
        """
        artifacts = self.list()
        kept = _with_ancestors(self._kept_by_policy(artifacts, keep), artifacts)
        doomed = [a for a in artifacts if a.id not in kept]
        if not dry_run:
            for artifact in doomed:
                self._remove(artifact)
            for path in self.stale_tmp_dirs():
                shutil.rmtree(path, ignore_errors=True)
        return doomed

    def stale_tmp_dirs(self, max_age_s: float = STALE_TMP_AGE_S) -> list[Path]:
        """Work directories under `.tmp/` left by runs that died more than `max_age_s` ago."""
        tmp_root = self.root / TMP_DIR
        if not tmp_root.is_dir():
            return []
        cutoff = time.time() - max_age_s
        return sorted(
            p for p in tmp_root.iterdir() if p.is_dir() and p.stat().st_mtime < cutoff and not dir_in_use(p)
        )

    def _kept_by_policy(self, artifacts: list[Artifact], keep: int) -> list[Artifact]:
        kept: list[Artifact] = []
        for name in sorted({a.name for a in artifacts}):
            versions = [a for a in artifacts if a.name == name]  # sorted by version already
            latest = self.latest_version(name)
            newest = versions[-keep:] if keep > 0 else []
            kept += [a for a in versions if a in newest or a.version == latest]
        return kept

    def _remove(self, artifact: Artifact) -> None:
        # Move out of sight first so no reader ever sees a half-deleted version.
        tmp_root = self.root / TMP_DIR
        tmp_root.mkdir(parents=True, exist_ok=True)
        graveyard = tmp_root / f"gc-{artifact.name}-v{artifact.version}-{uuid.uuid4().hex[:8]}"
        with name_lock(self.root, artifact.name):
            os.rename(artifact.path, graveyard)
        shutil.rmtree(graveyard, ignore_errors=True)


def _manifest(artifact_id: str, name: str, version: int, fields: dict[str, Any]) -> dict[str, Any]:
    """The manifest for `name@vN`: the store's header, then the stage's fields."""
    header = {
        "schema": SCHEMA,
        "id": artifact_id,
        "name": name,
        "version": version,
        "ref": f"{name}@v{version}",
        "status": "finished",
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    manifest = {**header, **fields}
    manifest.update(header)  # the store's facts are not the stage's to override
    return manifest


def _artifact_at_path(path: Path) -> Artifact | None:
    """The artifact at a filesystem path, or None when the path holds none."""
    path = path.expanduser().absolute()
    if not path.is_dir():
        return None
    candidates = [path, path / LATEST]
    if path.name == "model":
        candidates.insert(1, path.parent)
    for candidate in candidates:
        if (candidate / MANIFEST_FILE).is_file():
            return Artifact.from_dir(candidate.resolve())
    return None


def _with_ancestors(roots: Iterable[Artifact], everything: list[Artifact]) -> set[str]:
    """Ids of `roots` and of every ancestor of theirs found in `everything`."""
    by_id = {a.id: a for a in everything}
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        artifact = stack.pop()
        if artifact.id in seen:
            continue
        seen.add(artifact.id)
        stack += [by_id[p["id"]] for p in _parents(artifact.manifest) if p.get("id") in by_id]
    return seen


def _parents(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    parents = manifest.get("parents") or []
    return [p for p in parents if isinstance(p, dict)]


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back for the few system calls inside, then deliver it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)
