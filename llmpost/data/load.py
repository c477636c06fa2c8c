"""Read a dataset reference into plain rows: `load_rows(ref) -> LoadedData`.

A reference is, in the order tried:

    builtin:NAME[:SPLIT]         the built-in arithmetic task (offline, deterministic)
    a file                       .jsonl, .json, .csv, .parquet (a file has no splits)
    a directory                  saved with `datasets.save_to_disk`; or holding
                                 `train.jsonl`/`test.jsonl`-style split files; or
                                 holding such a layout under `data/` (a stage's artifact)
    an artifact ref              whatever `artifact_resolver(ref)` turns into a directory;
                                 its `data/` is read as above
    a hub id  OWNER/NAME[:SPLIT] `datasets.load_dataset`, only when online

`:SPLIT` written in the ref wins over the `split` argument; the default is "train".
Text files (.jsonl, .json, .csv) must be UTF-8 (a byte-order mark is allowed); any
other encoding is a `DataError` naming the line and byte where decoding failed.
Rows come back as plain dicts, not normalized: `formats.py` and `preferences.py`
turn them into what a stage needs. `datasets`, `pandas` and `pyarrow` are imported
only when a file needs them, so the CLI starts instantly.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmpost.errors import DataError

FILE_TYPES = (".jsonl", ".json", ".csv", ".parquet")
DEFAULT_SPLIT = "train"
OFFLINE_HINT = "check the path; offline, use a local file or a built-in dataset such as builtin:arith-sft"
SPLIT_SUFFIX = re.compile(r"^(?P<base>.+):(?P<split>[\w.\-\[\]%]+)$")


@dataclass
class LoadedData:
    """Rows read from one reference. `source` is the ref as the user wrote it."""

    rows: list[dict]
    source: str
    fingerprint: str  # sha256 of the file bytes, or of the rows as canonical JSON


def load_rows(
    ref: str,
    split: str | None = None,
    artifact_resolver: Callable[[str], Path | None] | None = None,
) -> LoadedData:
    """Read the rows of `ref` (see the module docstring for what a ref may be).

    `artifact_resolver` maps an artifact ref to its directory, or None when the ref
    is not an artifact. Raises `DataError` for a missing path, an unreachable hub,
    unreadable contents or a dataset with no rows.
    """
    if ref.startswith("builtin:"):
        rows, fingerprint = _load_builtin(ref, split)
    else:
        rows, fingerprint = _load_local_or_hub(ref, split, artifact_resolver)
    if not rows:
        raise DataError(
            f"{ref} has no rows", hint="check the file and the split; a dataset needs at least one row"
        )
    return LoadedData(rows=rows, source=ref, fingerprint=fingerprint)


def fingerprint_rows(rows: list[dict]) -> str:
    """sha256 of the rows as canonical JSON: the same rows always give the same fingerprint."""
    text = json.dumps(rows, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_file(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- routing -----------------------------------------------------------------------------


def _load_builtin(ref: str, split: str | None) -> tuple[list[dict], str]:
    from llmpost.data.builtin import load_builtin  # the generator is only needed for builtin refs

    name, _, ref_split = ref.removeprefix("builtin:").partition(":")
    rows = load_builtin(name, ref_split or split or DEFAULT_SPLIT)
    return rows, fingerprint_rows(rows)


def _load_local_or_hub(ref: str, split: str | None, resolver) -> tuple[list[dict], str]:
    # "path:test" is a split only when "path:test" itself is not a file.
    candidates = [(ref, split)]
    match = SPLIT_SUFFIX.match(ref)
    if match:
        candidates.append((match["base"], match["split"]))
    for name, name_split in candidates:
        path = Path(name).expanduser()
        if path.exists():
            return _load_path(path, name_split, ref)
        artifact_dir = resolver(name) if resolver else None
        if artifact_dir is not None:
            return _load_artifact(Path(artifact_dir), name_split, ref)
    if _looks_like_path(ref):
        raise DataError(
            f"{ref}: no such file or directory",
            hint=f"check the path; accepted files: {', '.join(FILE_TYPES)}, or a saved dataset directory",
        )
    name, name_split = candidates[-1]
    return _load_hub(name, name_split, ref)


def _looks_like_path(ref: str) -> bool:
    """A ref the user surely meant as a local path, so the hub is not worth asking."""
    return (
        ref.lower().endswith(FILE_TYPES)
        or ref.startswith(("/", "./", "../", "~"))
        or ref.count("/") > 1  # hub ids are NAME or OWNER/NAME
        or os.sep != "/"
        and os.sep in ref
    )


def _load_path(path: Path, split: str | None, ref: str) -> tuple[list[dict], str]:
    if path.is_dir():
        return _load_dir(path, split, ref)
    return _read_file(path, split, ref), fingerprint_file(path)


def _load_artifact(artifact_dir: Path, split: str | None, ref: str) -> tuple[list[dict], str]:
    data_dir = artifact_dir / "data"
    if not data_dir.is_dir():
        raise DataError(
            f"{ref}: artifact {artifact_dir} has no data/ folder",
            hint="pass an artifact that holds a dataset (one a data-producing stage wrote)",
        )
    return _load_dir(data_dir, split, ref)


def _load_dir(path: Path, split: str | None, ref: str) -> tuple[list[dict], str]:
    """A saved `datasets` directory, a directory of split files, or one of these under `data/`."""
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        rows = _read_saved_dataset(path, split, ref)
        return rows, fingerprint_rows(rows)
    if (path / "data").is_dir():
        return _load_dir(path / "data", split, ref)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FILE_TYPES)
    if not files:
        raise DataError(
            f"{ref}: directory {path} holds no data files",
            hint=f"expected split files such as train.jsonl ({', '.join(FILE_TYPES)}) "
            "or a directory written by datasets' save_to_disk",
        )
    wanted = split or DEFAULT_SPLIT
    matching = [p for p in files if p.stem == wanted]
    if not matching and split is None and len(files) == 1:
        matching = files  # one file and no split asked for: it is the data
    if not matching:
        available = ", ".join(sorted({p.stem for p in files}))
        raise DataError(f"{ref}: no split {wanted!r} in {path}", hint=f"available splits: {available}")
    file = min(matching, key=lambda p: FILE_TYPES.index(p.suffix.lower()))
    return _read_file(file, split, ref), fingerprint_file(file)


def _load_hub(name: str, split: str | None, ref: str) -> tuple[list[dict], str]:
    if _offline():
        raise DataError(
            f"{ref}: no such file or directory, and the Hugging Face hub cannot be reached "
            "(HF_HUB_OFFLINE is set)",
            hint=OFFLINE_HINT,
        )
    import datasets

    try:
        dataset = datasets.load_dataset(name, split=split or DEFAULT_SPLIT)
    except Exception as e:  # any failure (no network, no such repo, no such split) means the same to the user
        raise DataError(
            f"{ref}: no such file or directory, and loading it from the Hugging Face hub failed: "
            f"{type(e).__name__}: {e}",
            hint=OFFLINE_HINT,
        ) from e
    rows = dataset.to_list()
    return rows, fingerprint_rows(rows)


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


# --- readers -----------------------------------------------------------------------------


def _read_file(path: Path, split: str | None, ref: str) -> list[dict]:
    readers = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"{ref}: unsupported file type {path.suffix or '(none)'!r}",
            hint=f"accepted files: {', '.join(FILE_TYPES)}",
        )
    if reader is _read_json:
        return _read_json(path, split, ref)
    return reader(path, ref)


def _read_text(path: Path, ref: str) -> str:
    """The file decoded as UTF-8 (a leading byte-order mark dropped).

    Decoding the whole file up front is what lets a bad byte be reported by line;
    a text-mode `open` would fail somewhere in a block with no line to name.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{ref}: line {line} is not UTF-8 (byte 0x{data[e.start]:02x} at column {column}, "
            f"byte offset {e.start})",
            hint=_encoding_hint(data, path),
        ) from None
    return text


def _encoding_hint(data: bytes, path: Path) -> str:
    utf8_name = f"{path.stem}.utf8{path.suffix}"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Windows tools often save "Unicode" text as UTF-16 with a byte-order mark.
        return f"the file is UTF-16; re-save it as UTF-8, e.g. iconv -f utf-16 -t utf-8 {path.name} > {utf8_name}"
    return f"re-save it as UTF-8, e.g. for a Latin-1 file: iconv -f latin1 -t utf-8 {path.name} > {utf8_name}"


def _read_jsonl(path: Path, ref: str) -> list[dict]:
    rows = []
    # newline=None splits lines as `open` does: on \n, \r\n and \r, not on U+2028 inside strings.
    for line_number, line in enumerate(io.StringIO(_read_text(path, ref), newline=None), 1):
        if not line.strip():
            continue  # a trailing newline or blank separator is not a row
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{ref}: line {line_number} is not valid JSON ({e.msg}, column {e.colno})",
                hint="a .jsonl file holds one JSON object per line",
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                f"{ref}: line {line_number} is not a JSON object",
                hint='a .jsonl file holds one JSON object per line, e.g. {"prompt": ...}',
            )
        rows.append(row)
    return rows


def _read_json(path: Path, split: str | None, ref: str) -> list[dict]:
    try:
        data = json.loads(_read_text(path, ref))
    except json.JSONDecodeError as e:
        raise DataError(
            f"{ref}: not valid JSON (line {e.lineno}: {e.msg})",
            hint="a .json file holds a list of objects; one object per line is a .jsonl file",
        ) from None
    if isinstance(data, dict):
        # {"data": [...]} is a common wrapper; {"train": [...], "test": [...]} holds splits.
        key = "data" if "data" in data else split or DEFAULT_SPLIT
        if not isinstance(data.get(key), list):
            raise DataError(
                f'{ref}: a JSON object must hold its rows under "data" or a split name',
                hint=f"keys found: {', '.join(data) or 'none'}; or write a list of objects",
            )
        data = data[key]
    if not isinstance(data, list):
        raise DataError(
            f"{ref}: JSON must be a list of objects", hint='e.g. [{"prompt": ..., "completion": ...}]'
        )
    for n, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise DataError(
                f"{ref}: row {n} is not a JSON object", hint="a .json file holds a list of objects"
            )
    return data


def _read_csv(path: Path, ref: str) -> list[dict]:
    rows = []
    # newline="" as csv asks: a newline inside a quoted field stays as written.
    reader = csv.DictReader(io.StringIO(_read_text(path, ref), newline=""))
    for row in reader:
        if None in row:
            raise DataError(
                f"{ref}: line {reader.line_num} has more fields than the header",
                hint="quote fields that contain commas",
            )
        rows.append({k: _csv_cell(v) for k, v in row.items()})
    return rows


def _csv_cell(text: str | None) -> object:
    """A CSV cell as written; a JSON list or object in a cell is decoded.

    Message lists and ranked responses have no CSV form, so tools write them as JSON
    text; decoding them lets such files round-trip. Scalars stay strings.
    """
    if text and text[0] in "[{":
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        return value if isinstance(value, (list, dict)) else text
    return text


def _read_parquet(path: Path, ref: str) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DataError(
            f"{ref}: cannot read parquet file ({e})", hint="check that the file is a complete parquet file"
        ) from e


def _read_saved_dataset(path: Path, split: str | None, ref: str) -> list[dict]:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        wanted = split or DEFAULT_SPLIT
        if wanted not in loaded:
            raise DataError(
                f"{ref}: no split {wanted!r} in {path}", hint=f"available splits: {', '.join(loaded)}"
            )
        loaded = loaded[wanted]
    # A single saved Dataset, like a single file, has no splits to choose from.
    return loaded.to_list()
