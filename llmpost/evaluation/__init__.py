"""Held-out evaluation shared by every stage and `llmpost eval`: generation, exact match, loss."""
