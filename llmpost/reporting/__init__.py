"""Progress, metrics.jsonl, PNG plots and model cards."""
