"""Lineage: where an artifact came from, down to its base model and datasets.

Follows `manifest["parents"]` (entries `{"id", "ref", "manifest_sha256"}`) by id,
so a lineage survives renames. A parent gone from the store is reported as
missing; one whose manifest no longer matches the recorded hash as changed.
`lineage_dict` is the data (for `--json`); `lineage_tree` renders it with rich.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.tree import Tree

from llmpost.artifacts.store import Artifact, Store

# How a parent compares with what its child recorded about it.
CHECK_OK = "ok"
CHECK_CHANGED = "changed"  # manifest_sha256 differs: the parent was edited after the child was made
CHECK_MISSING = "missing"  # no artifact with that id in this store (removed, or another store)
CHECK_UNVERIFIED = "unverified"  # the child recorded no hash to compare with
CHECK_CYCLE = "cycle"  # only possible with hand-edited manifests; stops the walk


def lineage_dict(store: Store, artifact: Artifact) -> dict[str, Any]:
    """The lineage of `artifact` as nested dicts: ref, id, stage, base_model, datasets, parents.

    Each parent node also has `check`: ok, changed, missing, unverified or cycle.
    """
    index = {a.id: a for a in store.list()}
    return _node(artifact, index, check=None, ancestors=frozenset())


def lineage_tree(store: Store, artifact: Artifact) -> Tree:
    """The lineage of `artifact` as a rich Tree, ready to print."""
    return _add_tree(lineage_dict(store, artifact), parent=None)


def _node(artifact: Artifact, index: dict[str, Artifact], check: str | None, ancestors: frozenset) -> dict:
    manifest = artifact.manifest
    node: dict[str, Any] = {
        "ref": artifact.ref,
        "id": artifact.id,
        "stage": manifest.get("stage"),
        "path": str(artifact.path),
        "base_model": manifest.get("base_model"),
        "datasets": manifest.get("datasets") or [],
    }
    if check is not None:
        node["check"] = check
    ancestors = ancestors | {artifact.id}
    parents = [p for p in manifest.get("parents") or [] if isinstance(p, dict)]
    node["parents"] = [_parent_node(entry, index, ancestors) for entry in parents]
    return node


def _parent_node(entry: dict, index: dict[str, Artifact], ancestors: frozenset) -> dict:
    parent = index.get(entry.get("id"))
    if parent is None or parent.id in ancestors:
        check = CHECK_MISSING if parent is None else CHECK_CYCLE
        return {"ref": entry.get("ref"), "id": entry.get("id"), "check": check, "parents": []}
    expected = entry.get("manifest_sha256")
    if not expected:
        check = CHECK_UNVERIFIED
    else:
        check = CHECK_OK if parent.manifest_sha256 == expected else CHECK_CHANGED
    return _node(parent, index, check, ancestors)


def _add_tree(node: dict, parent: Tree | None) -> Tree:
    label = _node_label(node)
    branch = Tree(label) if parent is None else parent.add(label)
    if node.get("check") in (CHECK_MISSING, CHECK_CYCLE):
        return branch
    if node.get("base_model"):
        branch.add(_base_model_label(node["base_model"]))
    for dataset in node.get("datasets") or []:
        branch.add(_dataset_label(dataset))
    for child in node["parents"]:
        _add_tree(child, branch)
    return branch


def _node_label(node: dict) -> str:
    ref = escape(str(node.get("ref") or node.get("id")))
    check = node.get("check")
    if check == CHECK_MISSING:
        return f"[red]{ref} (missing)[/red] [dim]id {escape(str(node.get('id')))}[/dim]"
    if check == CHECK_CYCLE:
        return f"[red]{ref} (cycle in parents)[/red]"
    stage = f" [dim]({escape(str(node['stage']))})[/dim]" if node.get("stage") else ""
    warning = " [yellow](changed since!)[/yellow]" if check == CHECK_CHANGED else ""
    return f"[bold]{ref}[/bold]{stage}{warning}"


def _base_model_label(base: Any) -> str:
    if not isinstance(base, dict):
        return f"base model: {escape(str(base))}"
    revision = f" @ {escape(str(base['revision']))}" if base.get("revision") else ""
    return f"base model: [cyan]{escape(str(base.get('id')))}[/cyan]{revision}"


def _dataset_label(dataset: Any) -> str:
    if not isinstance(dataset, dict):
        return f"dataset: {escape(str(dataset))}"
    details = []
    if dataset.get("fingerprint"):
        details.append(f"fingerprint {str(dataset['fingerprint'])[:12]}")
    if dataset.get("rows") is not None:
        details.append(f"{dataset['rows']} rows")
    suffix = f" [dim]({escape(', '.join(details))})[/dim]" if details else ""
    return f"dataset: [green]{escape(str(dataset.get('ref')))}[/green]{suffix}"
