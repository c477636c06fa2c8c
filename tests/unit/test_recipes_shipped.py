"""Every recipe in recipes/ validates, dry-runs offline in an empty store, and (GPU recipes) fits 24 GB.

The dry run must not need the hub: a hub model that is not cached is planned as
"run" (it is fetched when the stage runs), and stages after it wait for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ok, run_cli

from llmpost.pipeline.recipe import load_recipe

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))
GPU_RECIPES = [r for r in RECIPES if r.name != "quickstart.yaml"]
ENV = {"COLUMNS": "250", "HF_HUB_OFFLINE": "1"}


def test_the_shipped_recipes_are_there():
    names = {r.name for r in RECIPES}
    assert {"quickstart.yaml", "qwen2.5-qlora.yaml", "llama3.1-8b-dpo.yaml", "r1-zero-gsm8k.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates_and_dry_runs_offline(recipe, tmp_path):
    loaded = load_recipe(recipe)  # raises with every problem listed
    proc = ok(run_cli("run", recipe, "--dry-run", store=tmp_path / "store", env=ENV))
    rows = [line for line in proc.stdout.splitlines() if line.count("│") > 4]
    planned = {row.split("│")[1].strip(): row.split("│")[4].strip() for row in rows}
    assert planned == {sid: "run" for sid in loaded.stages}, proc.stdout
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir()), "a dry run writes nothing"


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.stem)
def test_gpu_recipe_fits_one_24gb_gpu(recipe):
    proc = ok(run_cli("plan", recipe, "--gpu-memory", "24GB", "--json", env=ENV))
    plans = json.loads(proc.stdout)
    assert [p["stage"] for p in plans] == list(load_recipe(recipe).stages)
    too_big = [(p["stage"], round(p["needed_bytes"] / 2**30, 1)) for p in plans if not p["fits"]]
    assert not too_big, f"stages over 24 GiB: {too_big}"


def test_quickstart_covers_the_whole_flow():
    recipe = load_recipe(RECIPES[[r.name for r in RECIPES].index("quickstart.yaml")])
    uses = {spec.uses for spec in recipe.stages.values()}
    assert uses == {"sft", "rm", "ppo", "dpo", "judge", "grpo"}
    assert all("sft" in spec.needs for sid, spec in recipe.stages.items() if sid != "sft"), "all start from the SFT"
