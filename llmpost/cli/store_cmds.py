"""Store commands: `llmpost ls`, `show`, `lineage`, `gc`.

Registration and printing only; the work is in `llmpost.artifacts`. These must
stay instant, so nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llmpost.artifacts.lineage import lineage_dict, lineage_tree
from llmpost.artifacts.manifest import MANIFEST_FILE
from llmpost.artifacts.refs import validate_name
from llmpost.artifacts.store import Artifact, Store
from llmpost.cli.options import StoreOpt
from llmpost.reporting.key_metrics import key_metric

RefArg = Annotated[str, typer.Argument(help="NAME (latest), NAME@vN, or the path of a version directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of the formatted view.")]

MAX_FILES_SHOWN = 50


def register(app: typer.Typer) -> None:
    """Add the store commands to `app`."""
    app.command("ls", epilog="Example: llmpost ls sft --store ./artifacts")(ls)
    app.command("show", epilog="Example: llmpost show sft@v1 --json")(show)
    app.command("lineage", epilog="Example: llmpost lineage dpo --json")(lineage)
    app.command("gc", epilog="Example: llmpost gc --keep 2 --dry-run")(gc)


def ls(
    name: Annotated[str | None, typer.Argument(help="Only versions of this artifact name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list (ref, stage, created, latest, path, "
                                                         "every metric) instead of the table.")] = False,
    store: StoreOpt = None,
) -> None:
    """List finished artifacts, one a line: ref, stage, age and key metric (every metric: `show REF`, --json)."""
    st = Store.default(store)
    artifacts = st.list(validate_name(name) if name else None)
    if name and not artifacts:
        st.resolve(f"{name}@latest")  # raises the error that says what exists instead
    latest = {each: st.latest_version(each) for each in {a.name for a in artifacts}}
    if as_json:
        typer.echo(json.dumps([_listing(a, latest[a.name] == a.version) for a in artifacts], indent=2))
        return
    console = Console()
    if not artifacts:
        console.print(f"no artifacts in {escape(str(st.root))} yet")
        return
    console.print(f"artifacts in {escape(str(st.root))}", highlight=False)
    console.print(_artifacts_table(artifacts, latest))


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


def _artifacts_table(artifacts: list[Artifact], latest: dict[str, int | None]) -> Table:
    """One artifact a line, even at 80 columns: a 30-character ref with its star, the stage, the age and
    a key metric of up to 29 characters fit. Beyond that the metric is cut short (`…`), never wrapped.
    The fingerprint and the other metrics are in `llmpost show`."""
    table = Table(
        caption="* = latest; every metric: llmpost show REF",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    table.add_column("ref", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    table.add_column("created", no_wrap=True, justify="right")
    table.add_column("key metric")  # the one column rich may narrow; its cells are cut, never wrapped
    for a in artifacts:
        star = " [green]*[/green]" if latest.get(a.name) == a.version else ""
        table.add_row(
            f"[bold]{a.ref}[/bold]{star}",
            escape(str(a.manifest.get("stage") or "")),
            _age(a.manifest.get("finished_at")),
            Text(_key_metric(a.manifest), no_wrap=True, overflow="ellipsis"),
        )
    return table


def _listing(a: Artifact, is_latest: bool) -> dict[str, Any]:
    """`llmpost ls --json`'s entry for one artifact."""
    m = a.manifest
    return {"ref": a.ref, "stage": m.get("stage"), "created": m.get("finished_at"), "latest": is_latest,
            "path": str(a.path), "metrics": m.get("metrics") or {}}


def _key_metric(manifest: dict[str, Any]) -> str:
    """`NAME=VALUE (+CHANGE)`: the stage's key metric (`reporting/key_metrics.py`) with its change from the stage's start.

    A run record's is its last stage's exact match (`STAGE.exact_match`, no change: a stage id makes the
    name long enough); an artifact with none of its stage's key metrics shows its first metric.
    """
    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict):
        return ""
    scalars = {k: v for k, v in metrics.items() if _is_number(v)}
    if manifest.get("stage") == "run":
        last = [k for k in scalars if k.endswith(".exact_match")][-1:]  # the record lists stages in run order
        return f"{last[0]}={scalars[last[0]]:.3f}" if last else _key_metrics(metrics, limit=1)
    key = key_metric(manifest.get("stage"), scalars)
    if key is None:
        return _key_metrics(metrics, limit=1)
    delta = metrics.get(f"{key}_delta")
    if not _is_number(delta) and _is_number(metrics.get(f"{key}_before")):
        delta = scalars[key] - metrics[f"{key}_before"]
    return f"{key}={scalars[key]:.3f}" + (f" ({delta:+.3f})" if _is_number(delta) else "")


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


def _key_metrics(metrics: Any, limit: int | None = None, sep: str = "  ") -> str:
    """`k=v` for the first scalar metrics, in the order the stage recorded them."""
    if not isinstance(metrics, dict):
        return ""
    scalars = [(k, v) for k, v in metrics.items() if _is_number(v)]
    return sep.join(f"{k}={v:.4g}" for k, v in scalars[:limit])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _base_model_text(base: Any) -> str | None:
    if isinstance(base, dict):
        return str(base.get("id")) + (f" @ {base['revision']}" if base.get("revision") else "")
    return None if base is None else str(base)


def _age(iso: Any) -> str:
    """How long ago, in at most 8 characters: `just now`, `5m ago`, `3h ago`, `6d ago`, `5w ago`, `2y ago`."""
    try:
        then = datetime.fromisoformat(str(iso))
    except ValueError:
        return "" if iso is None else str(iso)
    if then.tzinfo is None:
        then = then.astimezone()  # a naive time is the local time
    seconds = (datetime.now(timezone.utc) - then).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size, below in (("m", 60, 60), ("h", 3600, 48), ("d", 86400, 14), ("w", 7 * 86400, 53)):
        if seconds < size * below:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds // (365 * 86400))}y ago"


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
