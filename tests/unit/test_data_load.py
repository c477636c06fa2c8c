"""load_rows on real files of every kind, written to tmp_path."""

from __future__ import annotations

import hashlib
import json

import pytest

from llmpost.data.load import fingerprint_rows, load_rows
from llmpost.errors import DataError

ROWS = [
    {"prompt": "1+1?", "completion": "2"},
    {"prompt": "2+3?", "completion": "5"},
]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_rows_source_and_fingerprint(tmp_path):
    path = write_jsonl(tmp_path / "sft.jsonl", ROWS)
    loaded = load_rows(str(path))
    assert loaded.rows == ROWS
    assert loaded.source == str(path)
    assert loaded.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


def test_jsonl_bad_line_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n\n{"prompt": "c", "completion": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl: line 3 is not valid JSON"):
        load_rows(str(path))


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n[1, 2]\n')
    with pytest.raises(DataError, match="line 2 is not a JSON object"):
        load_rows(str(path))


def test_latin1_jsonl_names_the_line_and_how_to_convert(tmp_path):
    path = tmp_path / "latin.jsonl"
    good = json.dumps(ROWS[0]) + "\n"
    path.write_bytes(good.encode() + '{"prompt": "caf\u00e9?", "completion": "oui"}\n'.encode("latin-1"))
    with pytest.raises(DataError) as err:
        load_rows(str(path))
    byte_offset = len(good) + len('{"prompt": "caf')
    assert err.value.message == (
        f"{path}: line 2 is not UTF-8 (byte 0xe9 at column 16, byte offset {byte_offset})"
    )
    assert "iconv -f latin1 -t utf-8 latin.jsonl" in err.value.hint


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("latin.json", '[{"prompt": "1+1?", "completion": "2"},\n {"prompt": "caf\u00e9?", "completion": "3"}]'),
        ("latin.csv", "prompt,completion\ncaf\u00e9?,3\n"),
    ],
)
def test_latin1_json_and_csv_name_the_line_and_byte(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))  # one byte per character: the offset is the index
    with pytest.raises(DataError) as err:
        load_rows(str(path))
    assert err.value.message.startswith(f"{path}: line 2 is not UTF-8 (byte 0xe9 at column ")
    assert err.value.message.endswith(f"byte offset {text.index(chr(0xE9))})")
    assert "re-save it as UTF-8" in err.value.hint


def test_utf16_file_is_named_as_such(tmp_path):
    path = tmp_path / "notepad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-16")  # starts with a byte-order mark
    with pytest.raises(DataError, match="line 1 is not UTF-8") as err:
        load_rows(str(path))
    assert "iconv -f utf-16 -t utf-8 notepad.jsonl" in err.value.hint


def test_utf8_with_byte_order_mark_and_crlf_reads(tmp_path):
    jsonl, csv_path = tmp_path / "bom.jsonl", tmp_path / "bom.csv"
    jsonl.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\r\n" for r in ROWS).encode())
    csv_path.write_bytes(b"\xef\xbb\xbfprompt,completion\r\n1+1?,\"two\r\nlines\"\r\n")
    assert load_rows(str(jsonl)).rows == ROWS
    assert load_rows(str(csv_path)).rows == [{"prompt": "1+1?", "completion": "two\r\nlines"}]


def test_json_list_and_data_wrapper(tmp_path):
    plain, wrapped = tmp_path / "plain.json", tmp_path / "wrapped.json"
    plain.write_text(json.dumps(ROWS))
    wrapped.write_text(json.dumps({"data": ROWS}))
    assert load_rows(str(plain)).rows == ROWS
    assert load_rows(str(wrapped)).rows == ROWS


def test_json_with_one_object_per_line_suggests_jsonl(tmp_path):
    path = tmp_path / "lines.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    with pytest.raises(DataError) as err:
        load_rows(str(path))
    assert ".jsonl" in err.value.hint


def test_csv_keeps_strings_and_decodes_json_cells(tmp_path):
    path = tmp_path / "rank.csv"
    path.write_text('prompt,responses,note\n2+2?,"[""4"", ""5""]",\n')
    assert load_rows(str(path)).rows == [{"prompt": "2+2?", "responses": ["4", "5"], "note": ""}]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    loaded = load_rows(str(path))
    assert loaded.rows == ROWS
    assert loaded.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS[:1])}
    ).save_to_disk(str(tmp_path / "splits"))

    assert load_rows(str(tmp_path / "single")).rows == ROWS
    assert load_rows(str(tmp_path / "splits")).rows == ROWS
    assert load_rows(str(tmp_path / "splits"), split="test").rows == ROWS[:1]
    assert load_rows(f"{tmp_path / 'splits'}:test").rows == ROWS[:1]
    with pytest.raises(DataError, match="no split 'dev'") as err:
        load_rows(str(tmp_path / "splits"), split="dev")
    assert "train" in err.value.hint and "test" in err.value.hint
    assert load_rows(str(tmp_path / "splits")).fingerprint == fingerprint_rows(ROWS)


def test_artifact_style_dir_picks_split_file(tmp_path):
    write_jsonl(tmp_path / "art" / "data" / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "art" / "data" / "test.jsonl", ROWS[1:])
    art = str(tmp_path / "art")
    assert load_rows(art).rows == ROWS
    assert load_rows(art, split="test").rows == ROWS[1:]
    assert load_rows(f"{art}:test").rows == ROWS[1:]
    with pytest.raises(DataError, match="no split 'dev'") as err:
        load_rows(art, split="dev")
    assert err.value.hint == "available splits: test, train"


def test_dir_of_split_files(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "test.jsonl", ROWS[:1])
    assert load_rows(str(tmp_path), split="test").rows == ROWS[:1]


def test_artifact_resolver_is_used_for_refs_that_are_not_paths(tmp_path):
    write_jsonl(tmp_path / "store" / "abc" / "data" / "train.jsonl", ROWS)
    resolver = {"judge-data@latest": tmp_path / "store" / "abc"}.get
    loaded = load_rows("judge-data@latest", artifact_resolver=resolver)
    assert loaded.rows == ROWS and loaded.source == "judge-data@latest"


def test_artifact_without_data_folder(tmp_path):
    (tmp_path / "model-art").mkdir()
    with pytest.raises(DataError, match="has no data/ folder"):
        load_rows("sft@1", artifact_resolver=lambda ref: tmp_path / "model-art")


def test_hub_id_offline_is_a_data_error_with_hint():
    with pytest.raises(DataError, match="hub cannot be reached") as err:
        load_rows("someone/some-dataset:train")
    assert "builtin:arith-sft" in err.value.hint
    assert "check the path" in err.value.hint


def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match="nope.jsonl: no such file or directory"):
        load_rows(str(missing))


def test_empty_file_has_no_rows(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl has no rows"):
        load_rows(str(path))


def test_fingerprint_of_rows_is_canonical():
    assert fingerprint_rows([{"a": 1, "b": 2}]) == fingerprint_rows([{"b": 2, "a": 1}])
    assert fingerprint_rows([{"a": 1}]) != fingerprint_rows([{"a": 2}])


def test_builtin_ref_routes_to_builtin():
    with pytest.raises(DataError, match="nope"):
        load_rows("builtin:nope")
    train = load_rows("builtin:arith-sft")
    test = load_rows("builtin:arith-sft:test")
    assert train.source == "builtin:arith-sft" and train.rows and test.rows
    assert load_rows("builtin:arith-sft", split="test").fingerprint == test.fingerprint
    assert train.fingerprint != test.fingerprint
