"""Reward-model scoring on SmolLM2: `score_sequences` (a batch's shared start once) against a whole pass.

The sequences are what PPO's reward model reads in the real-model recipe: a held-out problem
after SmolLM2's chat template (its default system prompt first) and an answer in the SFT data's
form, 64 of them, as a PPO step scores. SmolLM2 is loaded as a sequence classifier with one
output (its score head new: the scores' values do not matter, their agreement does). The whole
pass is what `score_sequences` ran before: batches of 32 by length, right-padded, no cache. The
two run in turn, twice each, in this process; the ratio is the whole pass's best time over
`score_sequences`' best.
"""

from __future__ import annotations

import time

import pytest
import torch

from tests.benchmarks.harness import record

SEQUENCES, BATCH, ROUNDS = 64, 32, 2


def whole_pass(model, sequences: list[list[int]]) -> list[float]:
    from llmpost.evaluation.rows import pad_rows

    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    scores = [0.0] * len(sequences)
    with torch.no_grad():
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            ids, mask = pad_rows([sequences[i] for i in chunk], model.config.pad_token_id, left=False)
            for i, value in zip(chunk, model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, 0].tolist(),
                                strict=True):
                scores[i] = value
    return scores


@pytest.mark.bench
def test_reward_model_scoring_with_the_shared_start_once_vs_a_whole_pass():
    from llmpost.data.builtin import load_builtin
    from llmpost.evaluation.rows import shared_start
    from llmpost.models.load import load_model, load_tokenizer, resolve_model
    from llmpost.rewards.reward_model import reward_input_ids, score_sequences

    src = resolve_model("smollm2")
    torch.manual_seed(0)
    model, tokenizer = load_model(src, kind="seqcls"), load_tokenizer(src, False)
    model.eval()
    rows = load_builtin("arith-sft", "test")[:SEQUENCES]
    sequences = [reward_input_ids(tokenizer, r["messages"][:1], r["messages"][1]["content"]) for r in rows]
    timed: dict[str, list[float]] = {"whole pass": [], "score_sequences": []}
    for _ in range(ROUNDS):
        for name, run in (("whole pass", lambda: whole_pass(model, sequences)),
                          ("score_sequences", lambda: score_sequences(model, sequences, BATCH))):
            start = time.perf_counter()
            scores = run()
            timed[name].append(time.perf_counter() - start)
            if name == "whole pass":
                expected = scores
    differs = max(abs(a - b) for a, b in zip(scores, expected, strict=True))
    assert differs < 1e-4
    whole_s, ours_s = min(timed["whole pass"]), min(timed["score_sequences"])
    record("smollm2 reward-model scoring of 64 PPO responses: whole pass / score_sequences", whole_s / ours_s, "report",
           whole_pass_s=[round(s, 2) for s in timed["whole pass"]],
           score_sequences_s=[round(s, 2) for s in timed["score_sequences"]],
           tokens=sum(map(len, sequences)), shared=shared_start([tuple(s) for s in sequences]),
           max_score_difference=f"{differs:.1e}", threads=torch.get_num_threads())
