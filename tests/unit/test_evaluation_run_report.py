"""The run report (pipeline/report.py) shows each stage's change with the stage's paired interval."""

from __future__ import annotations

from types import SimpleNamespace

from llmpost.pipeline.report import (
    devices_text,
    error_bars,
    key_figure_text,
    key_figures,
    markdown_report,
    versus,
)


def row(sid: str, **figures) -> dict:
    base = {"id": sid, "uses": sid, "ref": f"{sid}@v1", "status": "ran", "wall_time_s": 12.0, "start": "sft",
            "exact_match": None, "exact_match_before": None, "exact_match_ci": None, "exact_match_delta": None,
            "exact_match_delta_ci": None, "metrics": {}}
    return base | figures


DPO = row("dpo", exact_match=0.7, exact_match_before=0.605, exact_match_ci=[0.6331, 0.7596],
          exact_match_delta=0.095, exact_match_delta_ci=[0.05, 0.14])


def test_change_shows_the_paired_interval():
    assert versus(DPO) == "+0.095 [+0.050, +0.140] (from sft)"


def test_an_artifact_without_intervals_still_shows_its_change():
    older = row("ppo", exact_match=0.7, exact_match_before=0.65)
    assert versus(older) == "+0.050 (from sft)"
    assert versus(row("rm")) == "-"  # no held-out exact match: nothing to compare


def test_markdown_report_shows_rate_intervals_and_says_what_they_are():
    recipe = SimpleNamespace(name="demo", description=None, path=None, source={})
    text = markdown_report(recipe, [row("sft", exact_match=0.605, exact_match_before=0.0), DPO], has_plot=False)
    dpo_line = next(line for line in text.splitlines() if line.startswith("| dpo |"))
    assert "| 0.700 [0.633, 0.760] | +0.095 [+0.050, +0.140] (from sft) |" in dpo_line
    assert "95% intervals" in text and "paired bootstrap" in text


def test_error_bars_reach_the_interval_and_are_flat_without_one():
    below, above = error_bars([0.7, 0.5], [[0.6, 0.75], None])
    assert below == [0.7 - 0.6, 0.0] and above == [0.75 - 0.7, 0.0]


def test_stages_without_exact_match_are_reported_by_their_key_metric_over_seeds():
    rows = [row("rm", metrics={"accuracy": a, "loss": 0.4}) for a in (0.782, 0.785, 0.87)]
    rows += [row("judge", metrics={"ground_truth_agreement": 0.5, "position_consistency": 0.9}), DPO,
             row("judge-model", uses="sft", metrics={"mean_token_accuracy": 0.9})]  # no held-out figure
    figures = key_figures(rows)
    assert [(f["id"], f["metric"]) for f in figures] == [("rm", "accuracy"), ("judge", "ground_truth_agreement")]
    assert key_figure_text(figures[0]) == "rm accuracy: 0.782, 0.785, 0.870 (mean 0.812)"
    assert key_figure_text(figures[1]) == "judge ground_truth_agreement: 0.500"


def test_the_report_says_where_its_times_were_measured():
    recipe = SimpleNamespace(name="demo", description=None, path=None, source={})
    here, there = "cpu (AMD EPYC, x86_64, 2 cores, AVX2)", "cuda x1 (NVIDIA H100 80GB HBM3)"
    assert devices_text([row("sft", device=here), row("dpo", device=here)]) == f"times on {here}"
    text = markdown_report(recipe, [row("sft", device=here), row("dpo", device=there)], has_plot=False)
    assert f"Wall times on {here} (sft); {there} (dpo)" in text
    several_seeds = [row("sft", device=here, seed=0), row("sft", device=here, seed=1)]
    assert devices_text(several_seeds) == f"times on {here}"
    assert devices_text([row("sft")]) == "" and "Wall times" not in markdown_report(recipe, [row("sft")], False)
