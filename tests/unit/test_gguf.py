"""Which paths are GGUF checkpoints, and the errors when one cannot be used (the conversion itself: test_smollm2.py)."""

from __future__ import annotations

import pytest

from llmpost.errors import ModelError
from llmpost.models import gguf
from llmpost.models.load import resolve_model


def test_a_gguf_file_or_a_directory_holding_one_is_a_gguf_checkpoint(tmp_path):
    file = tmp_path / "model.Q4_K_M.gguf"
    file.write_bytes(b"GGUF")
    assert gguf.gguf_file_in(file) == file
    assert gguf.gguf_file_in(tmp_path) == file


def test_a_model_directory_with_a_gguf_beside_it_loads_as_a_directory(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    (tmp_path / "config.json").write_text("{}")
    assert gguf.gguf_file_in(tmp_path) is None
    assert gguf.gguf_file_in(tmp_path / "config.json") is None


def test_a_directory_with_two_gguf_files_asks_which_one(tmp_path):
    for name in ("a.Q4_1.gguf", "a.Q8_0.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(ModelError) as err:
        resolve_model(str(tmp_path))
    assert "2 GGUF files" in err.value.message and "a.Q4_1.gguf" in err.value.hint


def test_a_packaged_model_that_is_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(gguf.PACKAGED, "nomodel", ("llmpost_no_such_package", "x.gguf", "pip install nomodel"))
    with pytest.raises(ModelError) as err:
        resolve_model("nomodel")
    assert "not installed" in err.value.message and err.value.hint == "install it: pip install nomodel"


def test_the_hash_covers_the_whole_file(tmp_path):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"x" * (gguf.HASH_CHUNK + 1))
    b.write_bytes(b"x" * gguf.HASH_CHUNK + b"y")
    assert gguf.sha256_of(a) != gguf.sha256_of(b)
