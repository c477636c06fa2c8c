"""Small helpers every training stage calls: seeding and the progress/metrics callback."""

from __future__ import annotations

from llmpost.stages.context import StageContext


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices) for a reproducible run."""
    from transformers import set_seed as hf_set_seed

    hf_set_seed(seed)


def report_callback(ctx: StageContext, description: str):
    """A callback writing metrics.jsonl into the artifact and showing progress."""
    from llmpost.reporting.callbacks import ReportCallback
    from llmpost.reporting.metrics import MetricsLog

    return ReportCallback(MetricsLog(ctx.out_dir / "metrics.jsonl"), ctx.console, description)
