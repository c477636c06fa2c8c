"""Progress, metrics.jsonl, experiment trackers (`report_to`), PNG plots and model cards."""
