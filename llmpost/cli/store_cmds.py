"""Store commands: `llmpost ls`, `show`, `lineage`, `gc`.

Registration and printing only; the work is in `llmpost.artifacts`. These must
stay instant, so nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmpost.artifacts.lineage import lineage_dict, lineage_tree
from llmpost.artifacts.manifest import MANIFEST_FILE
from llmpost.artifacts.refs import validate_name
from llmpost.artifacts.store import Artifact, Store
from llmpost.cli.options import StoreOpt

RefArg = Annotated[str, typer.Argument(help="NAME (latest), NAME@vN, or the path of a version directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of the formatted view.")]

MAX_FILES_SHOWN = 50
KEY_METRICS_SHOWN = 3


def register(app: typer.Typer) -> None:
    """Add the store commands to `app`."""
    app.command("ls", epilog="Example: llmpost ls sft --store ./artifacts")(ls)
    app.command("show", epilog="Example: llmpost show sft@v1 --json")(show)
    app.command("lineage", epilog="Example: llmpost lineage dpo --json")(lineage)
    app.command("gc", epilog="Example: llmpost gc --keep 2 --dry-run")(gc)


def ls(
    name: Annotated[str | None, typer.Argument(help="Only versions of this artifact name.")] = None,
    store: StoreOpt = None,
) -> None:
    """List finished artifacts: ref, stage, when, fingerprint and key metrics."""
    st = Store.default(store)
    artifacts = st.list(validate_name(name) if name else None)
    if name and not artifacts:
        st.resolve(f"{name}@latest")  # raises the error that says what exists instead
    console = Console()
    if not artifacts:
        console.print(f"no artifacts in {escape(str(st.root))} yet")
        return
    console.print(_artifacts_table(st, artifacts))


def show(ref: RefArg, as_json: JsonOpt = False, store: StoreOpt = None) -> None:
    """Show one artifact: its manifest summary and the files it holds."""
    artifact = Store.default(store).resolve(ref)
    if as_json:
        typer.echo((artifact.path / MANIFEST_FILE).read_text(encoding="utf-8"), nl=False)
        return
    console = Console()
    console.print(_summary_table(artifact))
    console.print(_files_table(artifact.path))


def lineage(ref: RefArg, as_json: JsonOpt = False, store: StoreOpt = None) -> None:
    """Show where an artifact came from: parents, down to base model and datasets."""
    st = Store.default(store)
    artifact = st.resolve(ref)
    if as_json:
        typer.echo(json.dumps(lineage_dict(st, artifact), indent=2))
        return
    Console().print(lineage_tree(st, artifact))


def gc(
    keep: Annotated[
        int, typer.Option(min=0, help="Newest versions to keep per name (latest always stays).")
    ] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    store: StoreOpt = None,
) -> None:
    """Remove old versions that are not latest, not among the newest --keep, and no kept one's parent."""
    st = Store.default(store)
    stale = st.stale_tmp_dirs()
    sizes = {a.ref: _dir_size(a.path) for a in st.gc(keep=keep, dry_run=True)}
    removed = st.gc(keep=keep, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    console = Console()
    for artifact in removed:
        console.print(f"{verb} {artifact.ref}  [dim]({_human_size(sizes.get(artifact.ref, 0))})[/dim]")
    if stale:
        console.print(f"{verb} {len(stale)} stale work director{'y' if len(stale) == 1 else 'ies'} in .tmp/")
    if not removed and not stale:
        console.print("nothing to remove")


# -- formatting ---------------------------------------------------------------


def _artifacts_table(st: Store, artifacts: list[Artifact]) -> Table:
    # Compact enough for an 80-column terminal: light box, latest marked by a star.
    table = Table(
        title=f"artifacts in {escape(str(st.root))}",
        title_justify="left",
        caption="* = latest, fp = fingerprint",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("ref", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("fp", no_wrap=True)
    table.add_column("metrics", overflow="fold")  # one per line, so folding is the last resort
    latest = {name: st.latest_version(name) for name in {a.name for a in artifacts}}
    for a in artifacts:
        star = " [green]*[/green]" if latest[a.name] == a.version else ""
        table.add_row(
            f"[bold]{a.ref}[/bold]{star}",
            escape(str(a.manifest.get("stage") or "")),
            _local_time(a.manifest.get("finished_at")),
            str(a.manifest.get("fingerprint") or "")[:8],
            escape(_key_metrics(a.manifest.get("metrics"), sep="\n")),
        )
    return table


def _summary_table(a: Artifact) -> Table:
    m = a.manifest
    rows: list[tuple[str, Any]] = [
        ("ref", a.ref),
        ("id", a.id),
        ("stage", m.get("stage")),
        ("path", a.path),
        ("started", _local_time(m.get("started_at"))),
        ("finished", _local_time(m.get("finished_at"))),
        ("wall time", f"{m['wall_time_s']:.1f}s" if isinstance(m.get("wall_time_s"), int | float) else None),
        ("base model", _base_model_text(m.get("base_model"))),
        (
            "datasets",
            ", ".join(str(d.get("ref") if isinstance(d, dict) else d) for d in m.get("datasets") or []),
        ),
        ("parents", ", ".join(str(p.get("ref") or p.get("id")) for p in m.get("parents") or [])),
        ("seed", m.get("seed")),
        ("device", m.get("device")),
        ("metrics", _key_metrics(m.get("metrics"), limit=None)),
        ("fingerprint", m.get("fingerprint")),
        ("config sha256", m.get("config_sha256")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items() if v)),
    ]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        if value not in (None, ""):
            table.add_row(key, escape(str(value)))
    return table


def _files_table(path: Path) -> Table:
    files = sorted(p for p in path.rglob("*") if p.is_file())
    table = Table(title=f"files ({len(files)})", title_justify="left", show_header=False, box=None)
    table.add_column(overflow="fold")
    table.add_column(justify="right")
    for file in files[:MAX_FILES_SHOWN]:
        table.add_row(escape(str(file.relative_to(path))), _human_size(file.stat().st_size))
    if len(files) > MAX_FILES_SHOWN:
        table.add_row(f"... and {len(files) - MAX_FILES_SHOWN} more", "")
    return table


def _key_metrics(metrics: Any, limit: int | None = KEY_METRICS_SHOWN, sep: str = "  ") -> str:
    """`k=v` for the first scalar metrics, in the order the stage recorded them."""
    if not isinstance(metrics, dict):
        return ""
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return sep.join(f"{k}={v:.4g}" for k, v in scalars[:limit])


def _base_model_text(base: Any) -> str | None:
    if isinstance(base, dict):
        return str(base.get("id")) + (f" @ {base['revision']}" if base.get("revision") else "")
    return None if base is None else str(base)


def _local_time(iso: Any) -> str:
    try:
        return datetime.fromisoformat(str(iso)).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "" if iso is None else str(iso)


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
