"""Reward-model training on rankings: one epoch of `llmpost rm`'s ranking trainer vs plain TRL RewardTrainer.

Both sides train the same tiny sequence classifier, in this process one after the
other, for one epoch over the same preferences: RANKINGS built-in rankings of 4
responses, i.e. 6 pairs each. The ranking trainer takes one prompt with its 4
responses per example (4 sequences scored per prompt); plain TRL is fed the 6 pairs
expanded from each ranking (12 sequences per prompt). Each step forwards the same
number of sequences on both sides (8 prompts x 4 = 16 pairs x 2), so the ratio is
the cost of an epoch, not of a batch shape. Time is the trainer's own train_runtime
(tokenization happens before it on both sides).
"""

from __future__ import annotations

import pytest

from tests.benchmarks.harness import record

RANKINGS = 64
PROMPTS_PER_STEP = 8
K = 4


def fresh_model():
    from transformers import AutoModelForSequenceClassification

    from llmpost.models.tiny import tiny_path
    from llmpost.seeding import set_seed

    set_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_path(), num_labels=1)


def train_args(cls, out, batch_size):
    import torch

    return cls(output_dir=str(out), num_train_epochs=1, per_device_train_batch_size=batch_size, learning_rate=1e-3,
               logging_steps=1000, save_strategy="no", report_to="none", disable_tqdm=True,
               use_cpu=not torch.cuda.is_available(), max_length=None, dataset_num_proc=None, seed=0)


@pytest.mark.bench
def test_ranked_epoch_vs_plain_trl_reward_trainer(tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from llmpost.data.builtin import load_builtin
    from llmpost.data.preferences import rankings_to_pairs, to_rankings
    from llmpost.models.tiny import tiny_path
    from llmpost.stages.rm import Config, comparisons, encode, ranking_trainer_class

    rows = load_builtin("arith-rankings", "train")[:RANKINGS]
    tokenizer = AutoTokenizer.from_pretrained(tiny_path())

    groups, _ = encode(comparisons(rows, "bench", Config()), tokenizer, max_length=None)
    ranked = ranking_trainer_class()(model=fresh_model(), args=train_args(RewardConfig, tmp_path / "r", PROMPTS_PER_STEP),
                                     train_dataset=Dataset.from_list(groups), processing_class=tokenizer)
    ranked_s = ranked.train().metrics["train_runtime"]

    pairs = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in rankings_to_pairs(to_rankings(rows, "bench"))]
    plain = RewardTrainer(model=fresh_model(), args=train_args(RewardConfig, tmp_path / "p", PROMPTS_PER_STEP * K // 2),
                          train_dataset=Dataset.from_list(pairs), processing_class=tokenizer)
    plain_s = plain.train().metrics["train_runtime"]

    record("rm ranked epoch time / plain TRL RewardTrainer on the expanded pairs", ranked_s / plain_s, "<= 0.5",
           ranked_epoch_s=round(ranked_s, 2), plain_epoch_s=round(plain_s, 2), rankings=RANKINGS, pairs=len(pairs),
           ranked_steps=ranked.state.global_step, plain_steps=plain.state.global_step)
