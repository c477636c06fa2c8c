"""The one progress bar: what a user sees on the terminal while a stage runs."""

from __future__ import annotations

import io

from rich.console import Console

from llmpost.reporting.progress import ProgressBar, figures


def test_bar_shows_the_task_its_count_and_the_latest_figures():
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    with ProgressBar(console, "ppo", total=10) as bar:
        bar.update(3, figures({"reward_mean": 0.51234, "kl": 0.02, "loss": "n/a", "done": True}, ("reward_mean", "kl", "done")))
        bar.advance(2)
    shown = out.getvalue()
    assert "ppo" in shown and "5/10" in shown
    assert "reward_mean=0.5123  kl=0.02" in shown and "done" not in shown  # numbers only, not flags


def test_figures_keep_the_requested_order_and_skip_what_is_missing():
    assert figures({"b": 2, "a": 1.0}, ("a", "c", "b")) == "a=1  b=2"
