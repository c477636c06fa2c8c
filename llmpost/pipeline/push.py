"""`llmpost export REF --push-to-hub ORG/NAME`: an artifact's model on the Hugging Face Hub, with its model card.

    url = push_artifact("sft-lora", HubTarget("me/tiny-sft-lora", private=True), Store.default())

What goes up is the artifact's model/ as it is (full weights, or a PEFT adapter), or, with
`merge_to`, the full model `export_merged` writes there first; and, as README.md, a model card
made from the manifest and eval.json (`reporting.card.hub_card`: base model, parents, data,
metrics, llmpost version). The checks that need no network (the repo id, the artifact, offline
mode, a token) come first, then the repo is created or found, so a token without write access
fails in seconds rather than after a merge. The transfer itself is `models/hub.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from llmpost import __version__
from llmpost.artifacts.store import Artifact, Store
from llmpost.models.export import export_merged
from llmpost.models.hub import HubTarget, hub_id, open_repo, upload
from llmpost.models.load import resolve_model
from llmpost.reporting.card import hub_card

LOCAL_BASE_NOTE = ("This adapter's base model is not on the Hub: the adapter loads only where that base is at "
                   "the path its adapter_config.json names. `llmpost export REF --merge DIR --push-to-hub ORG/NAME` "
                   "uploads a standalone merged model.")


def push_artifact(ref: str, target: HubTarget, store: Store, *, merge_to: Path | None = None,
                  console: Console | None = None) -> str:
    """Upload artifact `ref`'s model (merged into `merge_to` first, when given) to `target`; return the URL."""
    console = console or Console(stderr=True)
    artifact = store.resolve(ref)  # the card is made from its manifest, so it must be an artifact
    src = resolve_model(ref, store)
    repo = open_repo(target)
    if merge_to is not None:
        folder = export_merged(src, merge_to)
        console.print(f"merged model written to [bold]{folder}[/bold]")
    else:
        folder = artifact.model_dir
    kind = ("merged" if merge_to is not None else "adapter") if src.adapter_path else "model"
    local_base = kind == "adapter" and hub_id(src.path) is None
    if local_base:
        console.print(f"[yellow]note:[/yellow] the adapter's base, {src.path}, is not on the Hub: "
                      "add --merge DIR to push a model that loads without it", highlight=False)
    card = hub_card(artifact.manifest, eval_report(artifact), target.repo_id, kind=kind, revision=target.revision,
                    base_model=hub_id(src.path) if kind == "adapter" else root_hub_id(artifact),
                    note=LOCAL_BASE_NOTE if local_base else "")
    megabytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    console.print(f"uploading {artifact.ref} ({kind}, {megabytes:.1f} MB) to {target.repo_id}")
    return upload(repo, folder, card, message=f"Upload {artifact.ref} ({kind}) with llmpost {__version__}")


def root_hub_id(artifact: Artifact) -> str | None:
    """The Hub id of the model at the root of the artifact's lineage, when that is a Hub model."""
    return hub_id((artifact.manifest.get("base_model") or {}).get("id"))


def eval_report(artifact: Artifact) -> dict | None:
    """The artifact's held-out report (eval.json), or None when its stage wrote none."""
    path = artifact.path / "eval.json"
    return json.loads(path.read_text()) if path.is_file() else None
