"""`llmpost ls` and the run summary at 80 columns: one artifact (one stage) a line, its figures whole.

The store holds an artifact of every stage kind with the metrics each stage writes, under names as
long as a recipe run with seeds makes; nothing is trained.
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import ok, run_cli
from rich.console import Console

from llmpost.artifacts.manifest import MANIFEST_FILE
from llmpost.artifacts.store import Artifact, Store
from llmpost.cli.stage_runner import console_width
from llmpost.pipeline.execute import Outcome
from llmpost.pipeline.recipe import load_recipe
from llmpost.pipeline.report import seeds_summary_table, summary_table
from llmpost.pipeline.runner import RunResult, StageRun
from llmpost.pipeline.seeds import SeedsResult, seeded_recipe

QUICKSTART = Path(__file__).parents[2] / "recipes" / "quickstart.yaml"
WIDTH = 80


def held_out(after: float, before: float | None = None) -> dict:
    """A stage's held-out figures in its manifest (`evaluation.report.headline`)."""
    figures = {"exact_match": after, "exact_match_ci": [round(after - 0.067, 4), round(after + 0.062, 4)]}
    if before is not None:
        change = round(after - before, 4)
        figures |= {"exact_match_before": before, "exact_match_delta": change,
                    "exact_match_delta_ci": [round(change - 0.045, 4), round(change + 0.046, 4)]}
    return figures


# name -> (stage, metrics as the stage writes them, the key metric `ls` shows)
ARTIFACTS = {
    "quickstart-sft": ("sft", held_out(0.605, 0.0) | {"train_loss": 0.4123, "steps": 1000},
                       "exact_match=0.605 (+0.605)"),
    "quickstart-rm": ("rm", {"accuracy_before": 0.5512, "accuracy": 0.7125, "accuracy_top": 0.6, "mean_margin": 1.234,
                             "reward_mean": 0.1, "reward_std": 1.3, "length_corr": 0.05, "accuracy_ci": [0.64, 0.78],
                             "accuracy_delta": 0.1613, "accuracy_delta_ci": [0.1, 0.22], "train_loss": 0.51,
                             "steps": 150, "train_runtime_s": 88.2}, "accuracy=0.713 (+0.161)"),
    "quickstart-dpo-rlaif-seed2": ("dpo", {"reward_accuracy": 0.58, "reward_margin": 0.913, **held_out(0.665, 0.621),
                                           "train_loss": 0.61, "train_pairs": 3000, "steps": 150,
                                           "train_runtime_s": 301.5}, "exact_match=0.665 (+0.044)"),
    "quickstart-ppo-seed1": ("ppo", {**held_out(0.63, 0.605), "reward_before": 0.11, "reward": 0.42,
                                     "rm_score_before": -0.3, "rm_score": 0.8, "kl": 0.051, "kl_max": 0.2,
                                     "train_reward": 0.5, "steps": 40, "num_processes": 1},
                             "exact_match=0.630 (+0.025)"),
    "quickstart-grpo": ("grpo", {**held_out(0.66, 0.605), "reward_before": 0.605, "reward": 0.66,
                                 "train_reward": 0.7, "steps": 120}, "exact_match=0.660 (+0.055)"),
    "quickstart-eval-gsm8k": ("eval", {**held_out(0.412), "n_eval": 200}, "exact_match=0.412"),
    "quickstart-judge-seed2": ("judge", {"position_consistency": 0.91, "tie_rate": 0.02, "parse_failure_rate": 0.0,
                                         "request_failure_rate": 0.0, "ground_truth_agreement": 0.8125,
                                         "pairs_judged": 4000, "rows_train": 3600, "rows_test": 400,
                                         "judge_requests": 8000, "judge_cache_hits": 0, "judge_tokens": 1234567},
                               "ground_truth_agreement=0.812"),
    "quickstart-judge-model-seed2": ("sft", {"train_loss": 0.3012, "steps": 500}, "train_loss=0.3012"),
    "run-quickstart": ("run", {"sft.exact_match": 0.605, "sft.exact_match_delta": 0.605, "dpo.exact_match": 0.7,
                               "dpo.exact_match_delta": 0.095, "dpo-rlaif.exact_match": 0.665,
                               "dpo-rlaif.exact_match_delta": 0.044}, "dpo-rlaif.exact_match=0.665"),
}
VERSIONS = {"quickstart-dpo-rlaif-seed2": 12}  # two-digit versions: the longest refs; one version otherwise
HOURS_AGO = {"quickstart-sft": 0, "quickstart-rm": 0.5, "quickstart-dpo-rlaif-seed2": 3, "quickstart-ppo-seed1": 30,
             "quickstart-grpo": 24 * 10, "quickstart-eval-gsm8k": 24 * 40, "quickstart-judge-seed2": 24 * 400}


def publish(store: Store, name: str, stage: str, metrics: dict, hours_ago: float) -> Artifact:
    with store.begin(name) as pending:
        (pending.dir / "model").mkdir()
        artifact = pending.finalize({"stage": stage, "metrics": metrics, "fingerprint": "0123abcd" * 8})
    manifest_path = artifact.path / MANIFEST_FILE  # as if it had finished `hours_ago`
    manifest = json.loads(manifest_path.read_text())
    finished = (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).isoformat(timespec="seconds")
    manifest_path.write_text(json.dumps(manifest | {"finished_at": finished}))
    return artifact


def fill(store: Store) -> Store:
    for name, (stage, metrics, _) in ARTIFACTS.items():
        versions = VERSIONS.get(name, 1)
        for version in range(1, versions + 1):
            publish(store, name, stage, metrics, hours_ago=HOURS_AGO.get(name, 1) + versions - version)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return fill(Store(tmp_path_factory.mktemp("tables") / "store"))


def lines_with(ref: str, lines: list[str]) -> list[str]:
    """The lines naming `ref` itself (not `ref`0, `ref`1 ... nor a longer name that ends in it)."""
    pattern = re.compile(rf"(?<![\w@-]){re.escape(ref)}(?![\w@-])")
    return [line for line in lines if pattern.search(line)]


def assert_fits(text: str) -> list[str]:
    lines = text.splitlines()
    too_long = [line for line in lines if len(line.rstrip()) > WIDTH]
    assert not too_long, "lines over 80 columns:\n" + "\n".join(too_long) + "\n\nin:\n" + text
    return lines


# -- llmpost ls ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", ["80", ""], ids=["COLUMNS=80", "piped"])  # piped: rich's 80 columns
def test_ls_shows_each_artifact_on_one_line_with_its_key_metric(store, columns):
    proc = ok(run_cli("ls", store=store.root, env={"COLUMNS": columns}))
    lines = assert_fits(proc.stdout)
    for name, (stage, _, key_metric) in ARTIFACTS.items():
        for version in range(1, VERSIONS.get(name, 1) + 1):
            found = lines_with(f"{name}@v{version}", lines)
            assert len(found) == 1, f"{name}@v{version} on {len(found)} lines:\n{proc.stdout}"
            assert key_metric in found[0] and f" {stage} " in found[0], found[0]
    assert "quickstart-dpo-rlaif-seed2@v12 *" in proc.stdout, "the latest is starred"
    assert "0123abcd" not in proc.stdout, "the fingerprint is in `llmpost show`"


def test_ls_says_how_long_ago(tmp_path):
    store = fill(Store(tmp_path))  # just now: "just now" is under a minute ago
    lines = ok(run_cli("ls", store=store.root, env={"COLUMNS": "80"})).stdout.splitlines()
    ages = {ref: lines_with(ref, lines)[0] for ref in ("quickstart-sft@v1", "quickstart-rm@v1",
            "quickstart-dpo-rlaif-seed2@v1", "quickstart-dpo-rlaif-seed2@v12", "quickstart-ppo-seed1@v1",
            "quickstart-grpo@v1", "quickstart-eval-gsm8k@v1")}
    expected = {"quickstart-sft@v1": "just now", "quickstart-rm@v1": "30m ago",
                "quickstart-dpo-rlaif-seed2@v1": "14h ago", "quickstart-dpo-rlaif-seed2@v12": "3h ago",
                "quickstart-ppo-seed1@v1": "30h ago", "quickstart-grpo@v1": "10d ago",
                "quickstart-eval-gsm8k@v1": "5w ago"}
    assert {ref: expected[ref] in line for ref, line in ages.items()} == dict.fromkeys(expected, True), ages
    assert "1y ago" in lines_with("quickstart-judge-seed2@v1", lines)[0]


def test_ls_json_lists_every_artifact_with_all_its_metrics(store):
    listed = json.loads(ok(run_cli("ls", "--json", store=store.root)).stdout)
    assert len(listed) == sum(VERSIONS.get(name, 1) for name in ARTIFACTS)
    rm = next(entry for entry in listed if entry["ref"] == "quickstart-rm@v1")
    assert rm["stage"] == "rm" and rm["latest"] is True and rm["metrics"] == ARTIFACTS["quickstart-rm"][1]
    assert datetime.fromisoformat(rm["created"]) < datetime.now(timezone.utc)
    latest = [entry["latest"] for entry in listed if entry["ref"].startswith("quickstart-dpo-rlaif-seed2@")]
    assert latest == [False] * 11 + [True]


# -- the run summary ------------------------------------------------------------------------------------

# the quickstart's figures: (exact match, at the stage's start)
FIGURES = {"sft": (0.605, 0.0), "dpo": (0.7, 0.605), "ppo": (0.63, 0.605), "dpo-rlaif": (0.665, 0.621),
           "grpo": (0.66, 0.605)}


# the stages without exact match, by their key metric
KEY_FIGURES = {"rm": {"accuracy": 0.782}, "judge": {"ground_truth_agreement": 0.167, "position_consistency": 0.24}}


def stage_metrics(sid: str) -> dict:
    if sid in FIGURES:
        return held_out(*FIGURES[sid]) | {"train_loss": 0.5, "steps": 100}
    return KEY_FIGURES.get(sid, {}) | {"steps": 100}


def run_of(recipe, store: Store, versions: dict[str, int] | None = None, fail: str | None = None) -> RunResult:
    """The result `run_recipe` would return, each stage's artifact written straight into `store`."""
    result = RunResult(recipe=recipe, plan=[], wall_time_s=2471.0)
    refs: dict[str, str] = {}
    for sid, spec in recipe.stages.items():
        if sid == fail:
            result.failed[sid] = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB [GPU 0; 79.1 GiB total]")
            continue
        if any(need == fail or need in result.blocked for need in spec.needs):
            result.blocked[sid] = next(need for need in spec.needs if need == fail or need in result.blocked)
            continue
        for _ in range((versions or {}).get(sid, 1)):
            with store.begin(spec.out) as pending:
                start = refs[spec.needs[0]] if spec.needs else "tiny"  # the model it started from
                artifact = pending.finalize({"stage": spec.uses, "metrics": stage_metrics(sid), "wall_time_s": 1000.4,
                                             "config": {"model": start}})
        refs[sid] = artifact.ref
        result.stages.append(StageRun(sid, spec.uses, "resumed" if sid == "grpo" else "ran",
                                      Outcome(artifact, False, 1000.4)))
    return result


def rendered(table) -> str:
    console = Console(width=WIDTH, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def change(sid: str) -> str:
    """The change with its interval as the summary prints it (`report.change_text`)."""
    figures = held_out(*FIGURES[sid])
    low, high = figures["exact_match_delta_ci"]
    return f"{figures['exact_match_delta']:+.3f} [{low:+.3f}, {high:+.3f}]"


def test_run_summary_shows_each_stage_on_one_line_with_its_change_whole(tmp_path):
    recipe = load_recipe(QUICKSTART)
    result = run_of(recipe, Store(tmp_path))
    text = rendered(summary_table(result))
    lines = assert_fits(text)
    for run in result.stages:
        found = lines_with(run.artifact.ref, lines)
        assert len(found) == 1, f"{run.artifact.ref} on {len(found)} lines:\n{text}"
        if run.id in FIGURES:
            assert f"{FIGURES[run.id][0]:.3f}  {change(run.id)}" in found[0], found[0]
    assert "dpo, ppo, dpo-rlaif, grpo from sft" in " ".join(lines), "where each change is measured from"
    stripped = [line.rstrip() for line in lines]
    assert "rm accuracy: 0.782" in stripped and "judge ground_truth_agreement: 0.167" in stripped, text


def test_run_summary_of_a_failed_stage_keeps_one_line_per_stage_and_says_why_below(tmp_path):
    result = run_of(load_recipe(QUICKSTART), Store(tmp_path), fail="rm")
    lines = assert_fits(rendered(summary_table(result)))
    assert "failed" in lines_with("quickstart-rm", lines)[0] and "skipped" in lines_with("quickstart-ppo", lines)[0]
    assert any(line.startswith("rm failed: CUDA out of memory. Tried to allocate 2.00 GiB [GPU 0;") for line in lines)
    assert any(line.startswith("ppo skipped: needs `rm`") for line in lines)


def test_seeds_summary_shows_each_seeds_stage_and_the_mean_on_one_line(tmp_path):
    recipe, store = load_recipe(QUICKSTART), Store(tmp_path)
    result = SeedsResult(recipe=recipe, seeds=[0, 1, 2], wall_time_s=7000.0)
    for seed in result.seeds:  # seed 2's dpo-rlaif reaches @v12: the longest ref
        result.runs[seed] = run_of(seeded_recipe(recipe, seed), store, versions={"dpo-rlaif": 12} if seed == 2 else {})
    result.means = [{"id": sid, "seeds": result.seeds, "start": "sft", "exact_match": after,
                     "exact_match_before": before, "exact_match_delta": round(after - before, 4),
                     "exact_match_delta_ci": [round(after - before - 0.051, 4), round(after - before + 0.052, 4)]}
                    for sid, (after, before) in FIGURES.items()]
    text = rendered(seeds_summary_table(result))
    lines = assert_fits(text)
    for run in result.runs.values():
        for stage in run.stages:
            found = lines_with(stage.artifact.ref, lines)
            assert len(found) == 1, f"{stage.artifact.ref} on {len(found)} lines:\n{text}"
            if stage.id in FIGURES:
                assert change(stage.id) in found[0], found[0]
    assert "quickstart-dpo-rlaif-seed2@v12 " in text, "a 30-character ref fits whole"
    means = [line for line in lines if "mean of 3 seeds" in line]
    assert len(means) == len(FIGURES) and "+0.095 [+0.044, +0.147]" in next(m for m in means if "dpo:" in m)
    assert "rm accuracy: 0.782, 0.782, 0.782 (mean 0.782)" in [line.rstrip() for line in lines], text


def test_piped_run_output_follows_columns_and_is_160_wide_without(monkeypatch):
    piped = io.StringIO()
    monkeypatch.setenv("COLUMNS", "80")
    assert Console(file=piped, width=console_width(piped)).width == 80
    monkeypatch.delenv("COLUMNS")
    assert Console(file=piped, width=console_width(piped)).width == 160  # a CI log: the plan's reasons unwrapped
