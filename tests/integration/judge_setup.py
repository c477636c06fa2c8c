"""A small judge for the judge tests, trained in seconds rather than the acceptance judge's minutes.

Learning to check arithmetic (builtin:arith-judge) takes the tiny model hundreds of
steps; that judge is trained in tests/integration/test_judge_acceptance.py (slow).
The fast tests need a judge with real, position-independent preferences that
trains quickly, so this one learns an easier skill in the same prompt format
(`JUDGE_TEMPLATE`): of a well-formed worked answer and a garbled copy of it, pick
the well-formed one. Garbled answers are what a policy sampled at a high
temperature writes, so the judge has real preferences between such samples.

`with_tiny_judge(store)` trains it once per session, whichever test (or test worker) asks
first, on a copy of the `sft_store` seed, and copies it into `store` as `tiny-judge`.
"""

from __future__ import annotations

import json
import os
import random
import string
from pathlib import Path

from conftest import SFT_SEED_ENV, build_once, copy_tree, ok, run_cli

from llmpost.data.builtin import JUDGE_TEMPLATE, load_builtin

JUDGE = "tiny-judge"
JUDGE_STEPS = 150
NOISE = string.ascii_letters + string.digits + "+-=#*? "


def garble(text: str, rng: random.Random, share: float = 0.5) -> str:
    """`text` with about `share` of its characters replaced by random ones (never equal to `text`)."""
    chars = [rng.choice(NOISE) if rng.random() < share else c for c in text]
    garbled = "".join(chars)
    return garbled if garbled != text else garbled + "?"


def format_judge_rows(split: str, n: int, seed: int = 0) -> list[dict]:
    """Judge conversations: which of a worked answer and its garbled copy is the answer; right side random."""
    rng = random.Random(seed)
    rows = []
    for row in load_builtin("arith-sft", split)[:n]:
        question, right = row["messages"][0]["content"], row["messages"][1]["content"]
        wrong = garble(right, rng)
        right_first = rng.random() < 0.5
        a, b = (right, wrong) if right_first else (wrong, right)
        rows.append({"messages": [{"role": "user", "content": JUDGE_TEMPLATE.format(question=question, a=a, b=b)},
                                  {"role": "assistant", "content": "A" if right_first else "B"}],
                     "prompt": question, "chosen": right, "rejected": wrong, "answer": right.split("#### ")[-1]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def garbled_pairs(store: Path, n: int = 12) -> Path:
    """Held-out preference rows (prompt, chosen, rejected, answer) of the kind the tiny judge learned."""
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected", "answer")} for r in format_judge_rows("test", n, seed=1)]
    return write_jsonl(store.parent / "garbled-pairs.jsonl", rows)


def with_tiny_judge(store: Path) -> Path:
    """`store` (the `sft_store`) holding `tiny-judge`, trained once per session on a copy of its seed."""
    if not (store / JUDGE / "latest").exists():
        seed = Path(os.environ[SFT_SEED_ENV])
        judged = build_once(seed.with_name("tiny-judge-seed"), lambda target: train_judge(copy_tree(seed, target)))
        copy_tree(judged / JUDGE, store / JUDGE)
    return store


def train_judge(store: Path) -> None:
    data = write_jsonl(store.parent / "format-judge.jsonl",
                       [{"messages": r["messages"]} for r in format_judge_rows("train", 3000)])
    ok(run_cli("sft", "--model", "sft", "--data", str(data), "--out", JUDGE, "--batch-size", "16",
               "--set", f"max_steps={JUDGE_STEPS}", "--set", "eval.enabled=false", "--set", "loss_data=null",
               store=store))
