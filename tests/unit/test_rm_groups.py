"""`llmpost rm` training data: rankings -> per-prompt comparison groups -> batches and the ranking loss."""

from __future__ import annotations

import json

import pytest
import torch

from llmpost.data.load import load_rows
from llmpost.rewards.reward_model import group_by_prompt
from llmpost.stages.rm import Config, collate, comparisons, encode, ranking_loss

Q1 = "Ann has 3 pens and gets 4 more. How many pens does Ann have?"
Q2 = "A box holds 9 cups. Sam takes out 2. How many cups remain?"
RANKED = [
    {"prompt": Q1, "responses": ["3+4=7\n#### 7", "3+4=8\n#### 8", "3+4=11\n#### 11", "3+4=20\n#### 20"]},
    {"prompt": Q2, "responses": ["9-2=7\n#### 7", "9-2=6\n#### 6", "9-2=1\n#### 1"], "scores": [5, 2, 2]},
]
# The same preferences written out by hand, one chosen/rejected row per pair, in another order.
HAND_EXPANDED = [
    {"prompt": Q2, "chosen": "9-2=7\n#### 7", "rejected": "9-2=1\n#### 1"},
    {"prompt": Q1, "chosen": "3+4=7\n#### 7", "rejected": "3+4=8\n#### 8"},
    {"prompt": Q1, "chosen": "3+4=11\n#### 11", "rejected": "3+4=20\n#### 20"},
    {"prompt": Q1, "chosen": "3+4=7\n#### 7", "rejected": "3+4=11\n#### 11"},
    {"prompt": Q1, "chosen": "3+4=8\n#### 8", "rejected": "3+4=11\n#### 11"},
    {"prompt": Q2, "chosen": "9-2=7\n#### 7", "rejected": "9-2=6\n#### 6"},
    {"prompt": Q1, "chosen": "3+4=7\n#### 7", "rejected": "3+4=20\n#### 20"},
    {"prompt": Q1, "chosen": "3+4=8\n#### 8", "rejected": "3+4=20\n#### 20"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def trained_pairs(groups):
    """What training sees: (prompt, better text, worse text) -> (weight, margin)."""
    return {
        (g.prompt[-1]["content"], g.responses[b], g.responses[w]): (pytest.approx(wt), m)
        for g in groups
        for b, w, wt, m in zip(g.better, g.worse, g.weight, g.margin, strict=True)
    }


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llmpost.models.tiny import tiny_path

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_path(), num_labels=1)
    return model, AutoTokenizer.from_pretrained(tiny_path())


def test_ranking_of_four_is_one_group_of_four_responses_and_six_pairs():
    [group] = comparisons(RANKED[:1], "r", Config())
    assert len(group.responses) == 4  # each response scored once, not once per pair
    assert sorted(zip(group.better, group.worse, strict=True)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert group.weight == [pytest.approx(1 / 6)] * 6
    assert group.ranks == [0, 1, 2, 3]


def test_ties_give_no_pair_and_best_vs_rest_keeps_the_best_only():
    [group] = comparisons(RANKED[1:], "r", Config())  # scores 5, 2, 2: the last two tie
    assert sorted(zip(group.better, group.worse, strict=True)) == [(0, 1), (0, 2)]
    assert group.weight == [0.5, 0.5]
    [best] = comparisons(RANKED[:1], "r", Config(pairs="best_vs_rest"))
    assert sorted(zip(best.better, best.worse, strict=True)) == [(0, 1), (0, 2), (0, 3)]


def test_margins_come_from_score_differences_else_rank_distance():
    scored, ranked = comparisons(RANKED[1:], "r", Config(margin_from_scores=True)), \
        comparisons(RANKED[:1], "r", Config(margin_from_scores=True))
    assert scored[0].margin == [3.0, 3.0]
    assert sorted(ranked[0].margin) == [1.0, 1.0, 1.0, 2.0, 2.0, 3.0]
    assert comparisons(RANKED[:1], "r", Config())[0].margin == [0.0] * 6


def test_ranked_file_and_hand_expanded_pairs_train_on_the_same_pairs(tmp_path, tiny):
    model, tokenizer = tiny
    ranked = comparisons(load_rows(write_jsonl(tmp_path / "ranked.jsonl", RANKED)).rows, "ranked", Config())
    pairs = comparisons(load_rows(write_jsonl(tmp_path / "pairs.jsonl", HAND_EXPANDED)).rows, "pairs", Config())
    assert trained_pairs(ranked) == trained_pairs(pairs)  # same pairs, and each prompt still weighs 1

    def loss_of(groups):
        rows, dropped = encode(sorted(groups, key=lambda g: g.prompt[-1]["content"]), tokenizer, 512)
        assert dropped == 0
        batch = collate(rows, model.config.pad_token_id)
        assert batch["input_ids"].shape[0] == 7  # 4 + 3 distinct responses
        with torch.no_grad():
            rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
        return ranking_loss(rewards, batch["better"], batch["worse"], batch["weight"], batch["margin"])[0].item()

    assert loss_of(ranked) == pytest.approx(loss_of(pairs), abs=1e-6)


def test_a_prompt_in_several_rows_counts_once():
    pairs = [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": c}],
              "rejected": [{"role": "assistant", "content": r}], "weight": 1.0}
             for q, c, r in [("a", "1", "2"), ("a", "1", "3"), ("a", "2", "3"), ("b", "x", "y")]]
    a, b = group_by_prompt(pairs)
    assert a.responses == ["1", "2", "3"] and a.weight == [pytest.approx(1 / 3)] * 3
    assert b.weight == [1.0]


def test_ranking_loss_is_weighted_bradley_terry():
    rewards = torch.tensor([2.0, 0.0, 1.0, 5.0])
    better, worse = torch.tensor([0, 0, 3]), torch.tensor([1, 2, 2])
    weight, margin = torch.tensor([0.25, 0.25, 0.5]), torch.tensor([0.0, 0.5, 1.0])
    loss, accuracy, mean_margin = ranking_loss(rewards, better, worse, weight, margin)
    expected = -(0.25 * torch.log(torch.sigmoid(torch.tensor(2.0))) + 0.25 * torch.log(torch.sigmoid(torch.tensor(0.5)))
                 + 0.5 * torch.log(torch.sigmoid(torch.tensor(3.0))))
    assert loss.item() == pytest.approx(expected.item())
    assert accuracy.item() == pytest.approx(1.0)
    assert mean_margin.item() == pytest.approx(0.25 * 2 + 0.25 * 1 + 0.5 * 4)


def test_too_long_responses_are_dropped_whole_and_the_prompt_still_weighs_one(tiny):
    _, tokenizer = tiny
    [group] = comparisons([{"prompt": "q", "responses": ["short", "x" * 400, "mid"]}], "r", Config())
    rows, dropped = encode([group], tokenizer, max_length=100)
    assert dropped == 2  # the two pairs involving the long response
    [row] = rows
    assert row["weight"] == [1.0]
    assert [group.responses[row["better"][0]], group.responses[row["worse"][0]]] == ["short", "mid"]


def test_gate_needs_the_held_out_evaluation():
    from llmpost.config.resolve import resolve
    from llmpost.errors import ConfigError

    with pytest.raises(ConfigError, match="min_accuracy needs the held-out evaluation"):
        resolve(Config, [{"min_accuracy": 0.8, "eval": {"enabled": False}}])
    with pytest.raises(ConfigError, match="min_accuracy"):
        resolve(Config, [{"min_accuracy": 1.5}])
