"""Acceptance: two-process DDP on CPU (gloo) produces the same artifact as one process (slow).

`sft` is launched by llmpost itself (`--launcher torchrun` and `--launcher
accelerate`); `dpo` runs as an unchanged command under plain torchrun. Each
artifact is compared with a single-process one of the same stage: the same files,
the same weights' names and shapes, loadable with plain transformers, and DDP
really split the data (half the optimizer steps for one epoch).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store

pytestmark = pytest.mark.slow


def arith_conversations(path: Path, n: int = 48) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"Tom has {i} pens and gets {i % 7} more. How many now?"},
                          {"role": "assistant", "content": f"{i}+{i % 7}={i + i % 7}\n#### {i + i % 7}"}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def layout(artifact_dir: Path) -> set[str]:
    """Every file of an artifact, relative to it (what a user or a script would look for)."""
    return {str(p.relative_to(artifact_dir)) for p in artifact_dir.rglob("*") if p.is_file()}


def load_and_generate(model_dir: Path) -> tuple[dict, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok.apply_chat_template([{"role": "user", "content": "Tom has 3 pens and gets 2 more."}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return shapes, tok.decode(out[0], skip_special_tokens=True)


def assert_same_artifact(single, multi) -> None:
    assert layout(multi.path) == layout(single.path)
    single_shapes, _ = load_and_generate(single.model_dir)
    multi_shapes, text = load_and_generate(multi.model_dir)
    assert multi_shapes == single_shapes and text
    assert single.manifest["stage"] == multi.manifest["stage"]


def test_sft_under_torchrun_and_accelerate_matches_one_process(tmp_path, store):
    data = arith_conversations(tmp_path / "conv.jsonl")
    args = ("sft", "--data", str(data), "--batch-size", "4", "--epochs", "1", "--set", "eval.max_samples=8",
            "--set", "logging_steps=2",
            "--set", f"loss_data={data}")
    ok(run_cli(*args, "--out", "single", store=store))
    ok(run_cli(*args, "--out", "torchrun", "--launcher", "torchrun", "--num-processes", "2", store=store))
    ok(run_cli(*args, "--out", "accel", "--launcher", "accelerate", "--num-processes", "2", store=store))

    st = Store(store)
    single = st.resolve("single")
    assert [a.ref for a in st.list()] == ["accel@v1", "single@v1", "torchrun@v1"]  # one version each, from rank 0
    for name in ("torchrun", "accel"):
        multi = st.resolve(name)
        assert_same_artifact(single, multi)
        # Two ranks of batch 4 share each epoch: half the optimizer steps of one process.
        assert multi.manifest["metrics"]["steps"] * 2 == single.manifest["metrics"]["steps"] == 12
        assert "exact_match" in json.loads((multi.path / "eval.json").read_text())
    assert not list((store / ".tmp").iterdir())


def test_dpo_unchanged_under_torchrun_matches_one_process(store):
    from llmpost.stages import STAGES

    if "dpo" not in STAGES:
        pytest.skip("the dpo stage is not part of this build")
    ok(run_cli("sft", "--out", "sft", "--set", "max_steps=20", "--set", "eval.enabled=false",
               "--set", "loss_data=null", store=store))
    args = ["dpo", "--model", "sft", "--set", "max_steps=4", "--batch-size", "4", "--set", "eval.max_samples=8",
            "--set", "logging_steps=1",
            "--store", str(store)]
    ok(run_cli(*args, "--out", "dpo1"))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "llmpost", *args, "--out", "dpo2"], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]

    st = Store(store)
    assert [a.ref for a in st.list("dpo2")] == ["dpo2@v1"]
    assert_same_artifact(st.resolve("dpo1"), st.resolve("dpo2"))
    assert st.resolve("dpo2").manifest["parents"][0]["ref"].startswith("sft@")
