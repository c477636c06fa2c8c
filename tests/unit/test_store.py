"""The artifact store on real files: publishing, refs, lineage, gc, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmpost.artifacts.lineage import lineage_dict, lineage_tree
from llmpost.artifacts.manifest import package_versions, read_manifest, sha256_json
from llmpost.artifacts.store import Artifact, Store
from llmpost.errors import ArtifactError


def publish(store: Store, name: str, **fields) -> Artifact:
    """Write a small artifact with a model/ dir, as a stage would."""
    with store.begin(name) as pending:
        (pending.dir / "model").mkdir()
        (pending.dir / "model" / "weights.bin").write_bytes(b"\0" * 16)
        return pending.finalize({"stage": "sft", **fields})


def visible_entries(root: Path) -> list[str]:
    """Everything a reader could mistake for an artifact (hidden and temp dirs excluded)."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if not p.relative_to(root).parts[0].startswith(".")
    )


# -- publishing ---------------------------------------------------------------


def test_finalize_publishes_v1_with_manifest_and_latest(tmp_path):
    store = Store(tmp_path / "store")
    artifact = publish(store, "sft", metrics={"loss": 1.5})

    assert artifact.ref == "sft@v1"
    assert artifact.path == store.root / "sft" / "v1"
    assert (artifact.model_dir / "weights.bin").is_file()
    manifest = read_manifest(artifact.path)
    assert manifest["schema"] == "llmpost.artifact/1"
    assert manifest["status"] == "finished"
    assert manifest["ref"] == "sft@v1" and manifest["version"] == 1 and manifest["name"] == "sft"
    assert manifest["metrics"] == {"loss": 1.5} and manifest["id"] == artifact.id
    assert os.readlink(store.root / "sft" / "latest") == "v1"
    assert list((store.root / ".tmp").iterdir()) == []


def test_second_finalize_makes_v2_and_moves_latest(tmp_path):
    store = Store(tmp_path)
    first, second = publish(store, "sft"), publish(store, "sft")
    assert (first.version, second.version) == (1, 2)
    assert first.id != second.id
    assert os.readlink(tmp_path / "sft" / "latest") == "v2"
    assert store.resolve("sft") == second


def test_store_owned_manifest_keys_cannot_be_overridden(tmp_path):
    with Store(tmp_path).begin("sft") as pending:
        artifact = pending.finalize({"version": 99, "name": "other", "status": "failed", "stage": "sft"})
    assert (artifact.manifest["version"], artifact.manifest["name"]) == (1, "sft")
    assert artifact.manifest["status"] == "finished"


def test_version_numbers_are_never_reused(tmp_path):
    store = Store(tmp_path)
    publish(store, "sft")
    (tmp_path / "sft" / "v2").mkdir()  # e.g. a version whose manifest was lost
    assert publish(store, "sft").version == 3
    assert [a.version for a in store.list("sft")] == [1, 3]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt(), SystemExit(3)])
def test_interrupted_run_leaves_nothing_visible(tmp_path, error):
    store = Store(tmp_path)
    publish(store, "sft")
    before = visible_entries(tmp_path)

    with pytest.raises(type(error)):
        with store.begin("sft") as pending:
            (pending.dir / "model").mkdir()
            raise error

    assert visible_entries(tmp_path) == before
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert os.readlink(tmp_path / "sft" / "latest") == "v1"


def test_leaving_without_finalize_discards_the_work(tmp_path):
    store = Store(tmp_path)
    with store.begin("sft") as pending:
        (pending.dir / "note.txt").write_text("half done")
    assert not pending.dir.exists()
    assert store.list() == []


def test_ctrl_c_while_publishing_is_delivered_after_latest_moves(tmp_path, monkeypatch):
    store = Store(tmp_path)
    publish(store, "sft")
    point_latest = Store._point_latest

    def interrupted_point_latest(self, name, version):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the rename and the symlink
        point_latest(self, name, version)

    monkeypatch.setattr(Store, "_point_latest", interrupted_point_latest)
    # Python's own Ctrl-C handler, also when pytest started with SIGINT ignored (as a background job)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            publish(store, "sft")
    finally:
        signal.signal(signal.SIGINT, previous)
    # The version was published whole, and `latest` agrees with it.
    assert os.readlink(tmp_path / "sft" / "latest") == "v2"
    assert [a.version for a in store.list("sft")] == [1, 2]


@pytest.mark.parametrize("bad", ["", "-x", ".hidden", "a/b", "sft@v1", "a b"])
def test_invalid_names_are_rejected_with_a_hint(tmp_path, bad):
    with pytest.raises(ArtifactError) as info:
        Store(tmp_path).begin(bad)
    assert info.value.hint


def _publish_many(root: str, barrier, count: int, queue) -> None:
    store = Store(root)
    for _ in range(count):
        with store.begin("race") as pending:
            (pending.dir / "pid").write_text(str(os.getpid()))
            barrier.wait(timeout=30)  # both processes finalize at the same moment
            queue.put(pending.finalize({"stage": "sft"}).version)


def test_concurrent_finalize_from_two_processes_gets_distinct_versions(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_publish_many, args=(str(tmp_path), barrier, 3, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]

    versions = sorted(queue.get(timeout=5) for _ in range(6))
    assert versions == [1, 2, 3, 4, 5, 6]
    assert [a.version for a in Store(tmp_path).list("race")] == versions
    assert os.readlink(tmp_path / "race" / "latest") == "v6"


# -- resolving ----------------------------------------------------------------


def test_resolve_by_name_version_and_path(tmp_path):
    store = Store(tmp_path)
    v1, v2 = publish(store, "sft"), publish(store, "sft")

    assert store.resolve("sft") == v2
    assert store.resolve("sft@latest") == v2
    assert store.resolve("sft@v1") == v1
    assert store.resolve(str(v1.path)) == v1
    assert store.resolve(str(v1.model_dir)) == v1
    assert store.resolve(v1.path) == v1
    assert store.resolve(str(tmp_path / "sft")) == v2  # a name directory means its latest
    assert store.resolve(str(tmp_path / "sft" / "latest")) == v2


def test_resolve_from_another_working_directory_by_relative_path(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    v1 = publish(store, "sft")
    monkeypatch.chdir(tmp_path)
    assert Store("elsewhere").resolve("store/sft/v1/model") == v1


def test_unknown_name_error_suggests_close_names(tmp_path):
    store = Store(tmp_path)
    publish(store, "sft")
    with pytest.raises(ArtifactError) as info:
        store.resolve("stf")
    assert "stf" in info.value.message
    assert "did you mean `sft`" in info.value.hint and "llmpost ls" in info.value.hint


def test_unknown_version_error_lists_versions(tmp_path):
    store = Store(tmp_path)
    publish(store, "sft")
    with pytest.raises(ArtifactError) as info:
        store.try_resolve("sft@v9")
    assert "v9" in info.value.message and "v1" in info.value.hint


def test_empty_store_error_points_at_the_store_option(tmp_path):
    with pytest.raises(ArtifactError) as info:
        Store(tmp_path / "nothing").resolve("sft@v1")
    assert "LLMPOST_STORE" in info.value.hint


def test_try_resolve_returns_none_for_model_ids(tmp_path):
    store = Store(tmp_path)
    publish(store, "sft")
    assert store.try_resolve("Qwen/Qwen2.5-0.5B") is None
    assert store.try_resolve("tiny") is None
    (tmp_path / "plain-model-dir").mkdir()
    assert store.try_resolve(str(tmp_path / "plain-model-dir")) is None
    with pytest.raises(ArtifactError):
        store.resolve("Qwen/Qwen2.5-0.5B")


def test_default_store_reads_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPOST_STORE", str(tmp_path / "env-store"))
    assert Store.default().root == tmp_path / "env-store"
    assert Store.default(tmp_path / "flag").root == tmp_path / "flag"
    monkeypatch.delenv("LLMPOST_STORE")
    assert Store.default().root == Path("artifacts").absolute()


def test_get_by_id_and_find_by_fingerprint(tmp_path):
    store = Store(tmp_path)
    a = publish(store, "sft", fingerprint="fp-a")
    b = publish(store, "sft", fingerprint="fp-a")
    c = publish(store, "dpo", fingerprint="fp-c")

    assert store.get_by_id(a.id) == a
    assert store.get_by_id("nope") is None
    assert store.find_by_fingerprint("sft", "fp-a") == b
    assert store.find_by_fingerprint(None, "fp-c") == c
    assert store.find_by_fingerprint("sft", "fp-c") is None


def test_list_skips_unfinished_and_sorts(tmp_path):
    store = Store(tmp_path)
    publish(store, "zeta"), publish(store, "alpha"), publish(store, "alpha")
    with store.begin("alpha"):  # in flight: invisible
        assert [a.ref for a in store.list()] == ["alpha@v1", "alpha@v2", "zeta@v1"]


# -- lineage ------------------------------------------------------------------


def two_generations(store: Store) -> tuple[Artifact, Artifact, Artifact]:
    base = {"id": "Qwen/Qwen2.5-0.5B", "revision": "abc123"}
    sft = publish(
        store, "sft", base_model=base, datasets=[{"ref": "builtin:sft", "fingerprint": "d1", "rows": 100}]
    )
    rm = publish(store, "rm", stage="rm", base_model=base, parents=[sft.as_parent()])
    dpo = publish(
        store,
        "dpo",
        stage="dpo",
        base_model=base,
        parents=[rm.as_parent()],
        datasets=[{"ref": "prefs.jsonl", "fingerprint": "d2", "rows": 50}],
    )
    return sft, rm, dpo


def test_lineage_follows_two_generations(tmp_path):
    store = Store(tmp_path)
    sft, rm, dpo = two_generations(store)

    tree = lineage_dict(store, dpo)
    assert tree["ref"] == "dpo@v1" and tree["datasets"][0]["ref"] == "prefs.jsonl"
    (rm_node,) = tree["parents"]
    assert (rm_node["ref"], rm_node["check"]) == ("rm@v1", "ok")
    (sft_node,) = rm_node["parents"]
    assert sft_node["id"] == sft.id and sft_node["datasets"][0]["rows"] == 100
    assert sft_node["base_model"] == {"id": "Qwen/Qwen2.5-0.5B", "revision": "abc123"}

    text = _render(lineage_tree(store, dpo))
    for expected in ("dpo@v1", "rm@v1", "sft@v1", "Qwen/Qwen2.5-0.5B @ abc123", "builtin:sft", "100 rows"):
        assert expected in text


def test_lineage_flags_missing_and_changed_parents(tmp_path):
    store = Store(tmp_path)
    sft, rm, dpo = two_generations(store)
    manifest = json.loads((rm.path / "manifest.json").read_text())
    (rm.path / "manifest.json").write_text(json.dumps({**manifest, "note": "edited"}))
    os.rename(sft.path, tmp_path / "gone")

    text = _render(lineage_tree(store, dpo))
    assert "(changed since!)" in text and "(missing)" in text
    rm_node = lineage_dict(store, dpo)["parents"][0]
    assert rm_node["check"] == "changed" and rm_node["parents"][0]["check"] == "missing"


def _render(tree) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(tree)
    return console.export_text()


# -- gc -----------------------------------------------------------------------


def test_gc_keeps_latest_newest_and_parents(tmp_path):
    store = Store(tmp_path)
    sft1 = publish(store, "sft")
    sft2, sft3 = publish(store, "sft"), publish(store, "sft")
    dpo = publish(store, "dpo", parents=[sft1.as_parent()])

    would = store.gc(keep=1, dry_run=True)
    assert [a.ref for a in would] == ["sft@v2"]
    assert sft2.path.exists()

    removed = store.gc(keep=1)
    assert [a.ref for a in removed] == ["sft@v2"]
    assert [a.ref for a in store.list()] == ["dpo@v1", "sft@v1", "sft@v3"]
    assert store.resolve("sft") == sft3 and store.resolve("dpo") == dpo
    assert publish(store, "sft").version == 4


def test_gc_removes_stale_work_dirs_but_not_live_ones(tmp_path):
    store = Store(tmp_path)
    publish(store, "sft")
    stale = tmp_path / ".tmp" / "sft-crashed"
    stale.mkdir()
    old = time.time() - 3 * 24 * 3600
    with store.begin("sft") as live:
        os.utime(stale, (old, old))
        os.utime(live.dir, (old, old))
        assert store.stale_tmp_dirs() == [stale]
        store.gc()
        assert not stale.exists() and live.dir.exists()


# -- manifest helpers -----------------------------------------------------------


def test_sha256_json_is_canonical():
    assert sha256_json({"b": 1, "a": [1, 2]}) == sha256_json({"a": [1, 2], "b": 1})
    assert sha256_json({"a": 1}) != sha256_json({"a": 2})


def test_package_versions_reads_metadata_only():
    versions = package_versions()
    assert set(versions) >= {"llmpost", "torch", "transformers", "trl", "peft", "bitsandbytes"}
    assert versions["llmpost"]


def test_store_code_never_imports_torch():
    # The store commands must stay instant: no torch/transformers behind them.
    code = (
        "import sys, llmpost.cli.store_cmds, llmpost.artifacts.lineage;"
        "from llmpost.artifacts.manifest import package_versions; package_versions();"
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_read_manifest_on_a_non_artifact_says_so(tmp_path):
    with pytest.raises(ArtifactError) as info:
        read_manifest(tmp_path)
    assert "manifest.json" in info.value.message and info.value.hint
