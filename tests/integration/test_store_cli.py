"""`llmpost ls / show / lineage / gc` through typer, on a real store in tmp_path."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from llmpost.artifacts.store import Artifact, Store
from llmpost.cli import store_cmds
from llmpost.errors import ArtifactError


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    store_cmds.register(app)
    return app


@pytest.fixture
def store(tmp_path) -> Store:
    """sft@v1, sft@v2 and dpo@v1 (child of sft@v1)."""
    store = Store(tmp_path / "store")
    base = {"id": "tiny", "revision": None}
    sft1 = publish(store, "sft", stage="sft", base_model=base, metrics={"train_loss": 2.5, "eval_loss": 2.25})
    publish(store, "sft", stage="sft", base_model=base, metrics={"train_loss": 1.5}, fingerprint="f" * 64)
    publish(
        store,
        "dpo",
        stage="dpo",
        base_model=base,
        parents=[sft1.as_parent()],
        datasets=[{"ref": "builtin:prefs", "fingerprint": "abc", "rows": 64}],
    )
    return store


def publish(store: Store, name: str, **fields) -> Artifact:
    with store.begin(name) as pending:
        (pending.dir / "model").mkdir()
        (pending.dir / "model" / "config.json").write_text("{}")
        return pending.finalize(fields)


def invoke(app, *args: str, store: Store | None = None):
    env = {"LLMPOST_STORE": str(store.root)} if store else {}
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})


def test_ls_lists_versions_and_marks_latest(app, store):
    result = invoke(app, "ls", store=store)
    assert result.exit_code == 0, result.output
    assert "sft@v1" in result.output and "dpo@v1" in result.output
    assert "sft@v2 *" in result.output and "sft@v1 *" not in result.output and "* = latest" in result.output
    assert "train_loss=2.5" in result.output  # no exact match: its first metric stands in
    assert "f" * 8 not in result.output, "the fingerprint is for `show`: one artifact a line at 80 columns"


def test_ls_one_name_and_store_flag(app, store):
    result = invoke(app, "ls", "dpo", "--store", str(store.root))
    assert result.exit_code == 0, result.output
    assert "dpo@v1" in result.output and "sft@" not in result.output


def test_ls_unknown_name_is_an_artifact_error(app, store):
    result = invoke(app, "ls", "stf", store=store)
    assert isinstance(result.exception, ArtifactError)
    assert "did you mean `sft`" in result.exception.hint


def test_ls_empty_store(app, tmp_path):
    result = invoke(app, "ls", "--store", str(tmp_path / "empty"))
    assert result.exit_code == 0 and "no artifacts" in result.output


def test_show_json_prints_the_raw_manifest(app, store):
    result = invoke(app, "show", "sft@v1", "--json", store=store)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["ref"] == "sft@v1" and manifest["metrics"]["eval_loss"] == 2.25


def test_show_summarises_manifest_and_files(app, store):
    result = invoke(app, "show", "dpo", store=store)
    assert result.exit_code == 0, result.output
    for expected in ("dpo@v1", "builtin:prefs", "sft@v1", "manifest.json", "model/config.json"):
        assert expected in result.output


def test_show_by_path(app, store):
    path = store.root / "sft" / "v2" / "model"
    result = invoke(app, "show", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ref"] == "sft@v2"


def test_show_unknown_version_is_an_artifact_error_with_hint(app, store):
    result = invoke(app, "show", "sft@v9", store=store)
    assert isinstance(result.exception, ArtifactError)
    assert "v1, v2" in result.exception.hint


def test_lineage_tree_and_json(app, store):
    result = invoke(app, "lineage", "dpo", store=store)
    assert result.exit_code == 0, result.output
    for expected in ("dpo@v1", "sft@v1", "base model: tiny", "builtin:prefs", "64 rows"):
        assert expected in result.output

    result = invoke(app, "lineage", "dpo", "--json", store=store)
    data = json.loads(result.output)
    assert data["parents"][0]["ref"] == "sft@v1" and data["parents"][0]["check"] == "ok"


def test_gc_dry_run_then_remove(app, store):
    result = invoke(app, "gc", "--keep", "0", "--dry-run", store=store)
    assert result.exit_code == 0, result.output
    assert "nothing to remove" in result.output  # sft@v1 is dpo's parent, sft@v2 is latest

    publish(store, "sft", stage="sft")
    result = invoke(app, "gc", "--dry-run", store=store)
    assert "would remove sft@v2" in result.output
    assert (store.root / "sft" / "v2").exists()

    result = invoke(app, "gc", store=store)
    assert "removed sft@v2" in result.output
    assert [a.ref for a in store.list()] == ["dpo@v1", "sft@v1", "sft@v3"]


@pytest.mark.parametrize("command", ["ls", "show", "lineage", "gc"])
def test_help_has_an_example(app, command):
    result = invoke(app, command, "--help")
    assert result.exit_code == 0
    assert "Example: llmpost" in result.output and "--store" in result.output
