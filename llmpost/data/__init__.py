"""Datasets: reading refs into rows (`load`), SFT and prompt formats (`formats`),
preference pairs and rankings (`preferences`) and the built-in task (`builtin`)."""
