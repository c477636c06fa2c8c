"""pipelines/: the Makefile chains run end to end on the tiny model; the CI example names real things."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from llmpost.artifacts.store import Store

ROOT = Path(__file__).parents[2]
PIPELINES = ROOT / "pipelines"
SMALL_EVAL = "--set eval.max_samples=8"


def make(makefile: str, store: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = ["make", "--no-print-directory", "-f", str(PIPELINES / makefile), f"STORE={store}",
           f"LLMPOST={sys.executable} -m llmpost", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-4000:]}"
    return proc


def test_rlhf_makefile_chains_rm_and_ppo_onto_an_sft(sft_store):
    args = ["SFT_NAME=sft", f"RM_ARGS=--set max_steps=3 {SMALL_EVAL}",
            f"PPO_ARGS=--set max_steps=2 --batch-size 8 {SMALL_EVAL}"]
    make("rlhf.mk", sft_store, *args)
    store = Store(sft_store)
    ppo, rm, sft = store.resolve("rlhf-ppo"), store.resolve("rlhf-rm"), store.resolve("sft")
    assert {p["id"] for p in ppo.manifest["parents"]} == {sft.id, rm.id}
    assert [p["id"] for p in rm.manifest["parents"]] == [sft.id]

    again = make("rlhf.mk", sft_store, "-n", *args)  # what a second `make` would run: nothing but the lineage
    assert [line.split(" -m llmpost ")[1].split()[0] for line in again.stdout.splitlines()] == ["lineage"]
    assert [a.ref for a in store.list("rlhf-ppo")] == ["rlhf-ppo@v1"]


def test_rlaif_makefile_lists_its_chain(tmp_path):
    dry = make("rlaif-dpo.mk", tmp_path / "store", "-n")
    commands = [line for line in dry.stdout.splitlines() if "-m llmpost" in line]
    assert [re.search(r"-m llmpost (\w+)", c).group(1) for c in commands] == ["sft", "sft", "judge", "dpo", "lineage"]
    assert "--judge rlaif-judge-model" in dry.stdout and "--data rlaif-prefs" in dry.stdout
    served = make("rlaif-dpo.mk", tmp_path / "store", "-n", "JUDGE=http://127.0.0.1:8000/v1")
    assert "builtin:arith-judge" not in served.stdout, "a served judge needs no judge model trained"


def test_ci_example_runs_shipped_things():
    workflow = yaml.safe_load((PIPELINES / "github-ci.yml").read_text())
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    text = "\n".join(runs)
    for recipe in re.findall(r"llmpost run (\S+\.yaml)", text):
        assert (ROOT / recipe).is_file(), recipe
    for makefile in re.findall(r"make -f (\S+\.mk)", text):
        assert (ROOT / makefile).is_file(), makefile
    assert "--dry-run" in text
