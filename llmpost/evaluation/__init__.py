"""Held-out evaluation shared by every stage and `llmpost eval`: generation, answer checking,
per-item results (heldout.py), what goes into eval.json and eval_items.jsonl (report.py), and
the statistics behind their intervals (stats.py)."""
