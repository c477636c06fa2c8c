"""What a stage gets to work with (`StageContext`) and what it hands back (`StageResult`).

The context resolves model and data references once, remembers them for the
manifest's lineage (parents, base model, datasets), and gives the stage the
directory it writes into. The store, not the stage, turns that directory into a
finished artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from llmpost import ranks
from llmpost.artifacts.store import Store
from llmpost.data.load import LoadedData, load_rows
from llmpost.models.load import ModelSource, resolve_model
from llmpost.reporting.metrics import MetricsLog

if TYPE_CHECKING:
    from llmpost.reporting.tracking import Tracker


def stage_inputs(cfg, *data: str | None, models: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The model and data references a training stage reads, for lineage and the fingerprint: its model
    (and `models`), its training data, its held-out data and any other `data` given (None: not read)."""
    return {"models": [cfg.model, *models], "data": [d for d in (cfg.data, cfg.held_out_data(), *data) if d]}


@dataclass
class StageResult:
    """A stage's summary metrics (for the manifest and `llmpost ls`) and its held-out report."""

    metrics: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] | None = None
    card: str = ""  # extra model-card text: how to use this artifact


@dataclass
class StageContext:
    stage: str
    name: str
    store: Store
    console: Console = field(default_factory=Console)
    out_dir: Path | None = None  # the artifact being written (becomes NAME/vN)
    work_dir: Path | None = None  # scratch for checkpoints; kept across a crash for resume
    is_main_process: bool = field(default_factory=ranks.is_main_process)  # rank 0 of a launched run, or alone
    models: dict[str, ModelSource] = field(default_factory=dict)
    datasets: dict[str, LoadedData] = field(default_factory=dict)
    tracker: Tracker | None = None  # the experiment trackers of `report_to`, open while the stage runs

    def metrics_log(self) -> MetricsLog:
        """metrics.jsonl in the artifact; each row also goes to the run's experiment trackers (`report_to`)."""
        return MetricsLog(self.out_dir / "metrics.jsonl", tracker=self.tracker)

    def model(self, ref: str) -> ModelSource:
        """Resolve a model reference (remembered as a parent of the artifact)."""
        if ref not in self.models:
            self.models[ref] = resolve_model(ref, self.store)
        return self.models[ref]

    def data(self, ref: str) -> LoadedData:
        """Load a dataset reference (remembered, with its fingerprint, in the manifest)."""
        if ref not in self.datasets:
            self.datasets[ref] = load_rows(ref, artifact_resolver=self.artifact_dir)
        return self.datasets[ref]

    def artifact_dir(self, ref: str) -> Path | None:
        artifact = self.store.try_resolve(ref)
        return artifact.path if artifact is not None else None

    def parents(self) -> list[dict]:
        """Every artifact this stage read, as manifest parent records."""
        seen = {}
        for src in self.models.values():
            if src.artifact is not None:
                seen[src.artifact.id] = src.artifact
        for ref in self.datasets:
            artifact = self.store.try_resolve(ref) if not ref.startswith("builtin:") else None
            if artifact is not None:
                seen[artifact.id] = artifact
        return [{"id": a.id, "ref": a.ref, "manifest_sha256": a.manifest_sha256} for a in seen.values()]

    def dataset_records(self) -> list[dict]:
        return [{"ref": ref, "fingerprint": d.fingerprint, "rows": len(d.rows)} for ref, d in self.datasets.items()]

    def base_model(self) -> dict | None:
        """The root model of the first model input (what an adapter would load on top of)."""
        for src in self.models.values():
            return src.describe()
        return None
