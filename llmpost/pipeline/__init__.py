"""Running stages into the store: one stage (execute.py), or a whole recipe."""
