"""The one progress bar: what a user sees on the terminal while a stage runs."""

from __future__ import annotations

import io

from rich.console import Console

from llmpost.reporting.progress import ProgressBar, clock, figures


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


def test_without_a_terminal_the_bar_prints_plain_lines_while_it_runs():
    # piped to a CI log, rich draws the bar only when it stops: a long stage must still show it is alive
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    bar = ProgressBar(console, "grpo", total=30, line_every_s=0).start()
    bar.update(10, figures({"loss": 0.25}, ("loss",)))
    shown_while_running = out.getvalue()
    bar.stop()
    assert "grpo 10/30  loss=0.25" in shown_while_running
    assert "elapsed, about" in shown_while_running and "left" in shown_while_running


def test_lines_are_spaced_by_the_interval_and_never_drawn_on_a_terminal():
    out = io.StringIO()
    quiet = ProgressBar(Console(file=out, width=120, force_terminal=False), "judge", total=100, line_every_s=3600)
    with quiet as bar:
        bar.advance(50)
    assert out.getvalue().count("judge") == 1  # the final bar alone, no interim line

    tty = io.StringIO()
    with ProgressBar(Console(file=tty, width=120, force_terminal=True), "dpo", total=4, line_every_s=0) as bar:
        bar.update(2)
    assert "elapsed, about" not in tty.getvalue()  # the live bar says it; no plain line in between


def test_clock_reads_minutes_and_hours():
    assert clock(65) == "1:05" and clock(3725) == "1:02:05" and clock(None) == "0:00"


def test_the_trainer_summary_log_keeps_the_last_figures_beside_the_finished_bar(tmp_path):
    from transformers import TrainerState

    from llmpost.reporting.callbacks import ReportCallback
    from llmpost.reporting.metrics import MetricsLog

    out = io.StringIO()
    callback = ReportCallback(MetricsLog(tmp_path / "metrics.jsonl"), Console(file=out, width=120), "sft")
    state = TrainerState(max_steps=4)
    callback.on_train_begin(None, state, None)
    state.global_step = 4
    callback.on_log(None, state, None, logs={"loss": 1.25, "learning_rate": 1e-4})
    callback.on_log(None, state, None, logs={"train_runtime": 3.0, "train_loss": 1.3})
    callback.on_train_end(None, state, None)
    assert "4/4" in out.getvalue() and "loss=1.25" in out.getvalue()
