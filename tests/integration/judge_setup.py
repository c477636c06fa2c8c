"""A tiny judge for the judge tests: the tiny model after a short SFT on builtin:arith-judge.

Trained once per session into the shared `sft_store` (as `tiny-judge`), whichever
judge test module asks first. Short on purpose: it answers in the judge's format
(A or B) but is far from the acceptance judge, which tests/integration/
test_judge_acceptance.py trains at full size.
"""

from __future__ import annotations

from pathlib import Path

from conftest import ok, run_cli

JUDGE = "tiny-judge"
JUDGE_STEPS = 120


def with_tiny_judge(store: Path) -> Path:
    """`store` holding `tiny-judge` (trained now unless an earlier test did)."""
    if not (store / JUDGE / "latest").exists():
        ok(run_cli("sft", "--model", "tiny", "--data", "builtin:arith-judge", "--out", JUDGE, "--batch-size", "16",
                   "--set", f"max_steps={JUDGE_STEPS}", "--set", "eval.enabled=false", store=store))
    return store
