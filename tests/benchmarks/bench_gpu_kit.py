"""The GPU benchmark kit (`make bench-gpu`) at toy size: it runs end to end before a GPU is there to run it.

Runs `python -m tests.benchmarks.gpu_kit --size toy` as `make bench-gpu` runs `--size real`, and checks
its table: every row is there, no run failed, and on a machine without CUDA the vLLM rows say why
they were skipped. The interval of the SFT tokens/s ratio is checked on made-up step times, in `make test`. The toy figures themselves mean little (a 2-layer model on CPU), so nothing is
recorded in the benchmark table; the real size's figures are read from its own results.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.gpu_kit import ANCHORS, REPO, GiB, Kit, Row, ratio_interval, timing

ROWS = ["sft 64 llmpost", "sft 64 plain TRL", "sft 128 llmpost", "sft 128 plain TRL", "sft 256 llmpost",
        "sft 256 plain TRL", "dpo", "grpo", "grpo --vllm", "ppo", "ppo --vllm"]


@pytest.mark.bench
def test_gpu_kit_runs_at_toy_size(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.gpu_kit", "--size", "toy", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout)
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {r["run"]: r for r in results["rows"]}
    assert list(rows) == ROWS
    failed = {name: r["status"] for name, r in rows.items() if r["status"] != "ok" and not r["status"].startswith("skipped")}
    assert not failed, failed
    for name, row in rows.items():
        if "--vllm" in name and not results["machine"]["cuda"]:
            assert row["status"] == "skipped: no CUDA"
        elif row["status"] == "ok":
            assert row["step_s"] and row["peak_bytes"] and row["plan_ratio"], row
    assert all(rows[f"sft {n} {side}"]["tokens_s"] for n in (64, 128, 256) for side in ("llmpost", "plain TRL"))
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {name} |" in table for name in ROWS)


@pytest.mark.bench
def test_gpu_kit_sft_rounds_alternate_the_side_that_runs_first(tmp_path: Path):
    """`--sft-rounds 2`: two pairs per length, the first side swapped between them, the ratio the pairs' median."""
    proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.gpu_kit", "--size", "toy", "--out", str(tmp_path),
                           "--only", "sft:64,sft:128", "--sft-rounds", "2"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["run"]: r for r in json.loads((tmp_path / "results.json").read_text())["rows"]}
    assert list(rows) == ROWS[:4]
    assert rows["sft 64 llmpost"]["details"]["order"] == ["llmpost", "plain", "plain", "llmpost"]
    assert rows["sft 128 llmpost"]["details"]["order"] == ["llmpost", "plain", "plain", "llmpost"]
    for n in (64, 128):
        ours = rows[f"sft {n} llmpost"]
        ratios = ours["details"]["round_ratios"]
        assert len(ratios) == 2 and all(r > 0 for r in ratios)
        assert ours["vs_plain"].startswith(f"tok/s {sum(ratios) / 2:.2f}x")  # the median of two is their mean
        assert "rounds: " in ours["vs_plain"]
        low, high = ours["details"]["ratio_interval"]
        assert low <= sum(ratios) / 2 <= high and f"[{low:.2f}, {high:.2f}]" in ours["vs_plain"]
    # every run of every round is its own process, its own log
    logs = {p.name for p in (tmp_path / "logs").glob("*.log")}
    assert {"sft-64.log", "sft-64-r1.log", "plain-64.log", "plain-64-r1.log"} <= logs


def metrics_rows(step_seconds: list[float], tokens_per_step: int = 2048) -> list[dict]:
    """One run's per-step metrics rows (as metrics.jsonl holds them) for the given step times."""
    rows, clock = [{"step": 1, "time": 1.0, "num_tokens": tokens_per_step}], 1.0
    for step, seconds in enumerate(step_seconds, start=2):
        clock += seconds
        rows.append({"step": step, "time": clock, "num_tokens": tokens_per_step * step, "loss": 1.0})
    return rows + [{"step": len(step_seconds) + 1, "time": clock + 1, "train_runtime": clock}]


JITTER = [0.0, 0.08, -0.05, 0.1, -0.09, 0.03, -0.02, 0.06]  # a 0.1 s step-to-step spread, as on the H200


def test_ratio_interval_holds_parity_when_both_sides_step_alike():
    ours = [metrics_rows([0.5 + j for j in JITTER])]
    plain = [metrics_rows([0.5 + j for j in reversed(JITTER)])]
    low, high = ratio_interval(ours, plain, warmup=1)
    ratio = timing(ours, 1)[1] / timing(plain, 1)[1]
    assert low < ratio < high
    assert low < 1.0 < high
    assert high - low > 0.1  # 8 steps with a 0.1 s spread cannot pin a 0.5 s step to better than 10%


def test_ratio_interval_excludes_parity_when_llmpost_is_a_quarter_slower():
    ours = [metrics_rows([0.625 + j / 4 for j in JITTER]) for _ in range(3)]
    plain = [metrics_rows([0.5 + j / 4 for j in reversed(JITTER)]) for _ in range(3)]
    low, high = ratio_interval(ours, plain, warmup=1)
    assert low < 0.8 < high < 1.0


def test_ratio_interval_counts_the_spread_between_pairs():
    """Steady steps within each pair, but the pairs disagree: one pair's interval is a point, three pairs' spans them."""
    plain = [metrics_rows([0.5] * 8)]
    pairs = [[metrics_rows([0.5 / r] * 8)] for r in (0.8, 1.0, 1.2)]
    for pair, r in zip(pairs, (0.8, 1.0, 1.2), strict=True):
        assert ratio_interval(pair, plain, warmup=1) == pytest.approx((r, r))
    low, high = ratio_interval([p[0] for p in pairs], plain * 3, warmup=1)
    assert (low, high) == pytest.approx((0.8, 1.2))


def test_ratio_interval_is_none_without_timed_tokens():
    no_tokens = [[{k: v for k, v in row.items() if k != "num_tokens"} for row in metrics_rows([0.5] * 8)]]
    assert ratio_interval(no_tokens, [metrics_rows([0.5] * 8)], warmup=1) is None
    assert ratio_interval([metrics_rows([0.5] * 2)], [metrics_rows([0.5] * 8)], warmup=5) is None


@pytest.mark.parametrize(("within_noise", "verdict"), [
    (True, "anchor NO (tok/s: 1.0x is inside the 95% interval)"), (False, "anchor NO")])
def test_a_2k_miss_within_the_noise_is_marked_so(tmp_path: Path, within_noise: bool, verdict: str):
    kit = Kit("real", tmp_path, "llama-3.1-8b", {}, {}, {}, started=0.0)
    row = Row("sft 2K llmpost", "sft", "Llama-3.1-8B", "1 x 2048 tokens", peak_bytes=6.65 * GiB,
              target=f"{ANCHORS['sft 2K']}; plan +-20%",
              details={"anchor_met": False, "miss_within_noise": within_noise})
    kit.rows.append(row)
    kit.judge()
    assert row.met == verdict
