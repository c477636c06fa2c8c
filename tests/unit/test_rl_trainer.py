"""PPOTrainer on the real tiny model: responses no reward applies to (NaN), and early stopping on approx-KL."""

from __future__ import annotations

import math

import pytest
import torch

from llmpost.errors import LlmpostError
from llmpost.rl.policy import load_policy
from llmpost.rl.rollout import prompt_token_lists, rollout_from_token_lists, sample_rollout
from llmpost.rl.settings import KLSettings, PPOSettings, RolloutSettings
from llmpost.rl.trainer import PPOTrainer

ROWS = [{"prompt": [{"role": "user", "content": f"say {i}"}]} for i in range(8)]
TEXTS = [f"<|user|>say {i}<|end|><|assistant|>" for i in range(8)]
UNREWARDED = [1, 4, 6]
REWARDED = [i for i in range(8) if i not in UNREWARDED]


@pytest.fixture(scope="module")
def tiny_src():
    from llmpost.models.load import load_tokenizer, resolve_model

    src = resolve_model("tiny")
    return src, load_tokenizer(src)


class SkippingReward:
    """len(completion) % 3 + 1, and NaN (no reward applies) for the responses in `skip`; remembers what it gave."""

    def __init__(self, skip):
        self.skip, self.given = set(skip), []

    def __call__(self, prompts, completions, rows):
        values = [math.nan if i in self.skip else float(len(c) % 3 + 1) for i, c in enumerate(completions)]
        self.given.append(values)
        return values, {"len_mod_3": values}


def make_trainer(tiny_src, reward, ppo: PPOSettings | None = None, learning_rate: float = 1e-5) -> PPOTrainer:
    src, tok = tiny_src
    torch.manual_seed(0)
    policy, reference = load_policy(src, qlora=False, lora=None)
    return PPOTrainer(policy, reference, tok, reward, ROWS, rollout=RolloutSettings(max_new_tokens=8),
                      kl=KLSettings(), ppo=ppo or PPOSettings(mini_batch_size=4), batch_size=8, steps=1,
                      learning_rate=learning_rate)


def test_an_unrewarded_response_is_left_out_of_the_update(tiny_src):
    """Its tokens carry no advantage or return, and the others' update is what it would be without it."""
    _, tok = tiny_src
    trainer = make_trainer(tiny_src, SkippingReward(UNREWARDED))
    torch.manual_seed(1)
    rollout = sample_rollout(trainer.policy, tok, TEXTS, temperature=1.0, top_p=1.0, max_new_tokens=8)
    scores, _ = trainer.score(ROWS, rollout)
    assert [i for i, s in enumerate(scores.tolist()) if math.isnan(s)] == UNREWARDED
    batch, _ = trainer.experience(rollout, scores)
    assert not batch["response_mask"][UNREWARDED].any()
    assert not batch["advantages"][UNREWARDED].any() and not batch["returns"][UNREWARDED].any()

    # Reference: the rewarded responses alone, as if the others had never been sampled.
    lengths = rollout.response_lengths.tolist()
    prompts = prompt_token_lists(tok, [TEXTS[i] for i in REWARDED])
    completions = [rollout.response_ids[i, :lengths[i]].tolist() for i in REWARDED]
    alone, _ = trainer.experience(rollout_from_token_lists(prompts, completions, tok), scores[REWARDED])
    for row, i in enumerate(REWARDED):
        n = lengths[i]
        assert torch.allclose(batch["advantages"][i, :n], alone["advantages"][row, :n], atol=1e-4)
        assert torch.allclose(batch["returns"][i, :n], alone["returns"][row, :n], atol=1e-4)


def test_a_step_counts_the_unrewarded_responses_and_averages_only_the_rewards(tiny_src):
    reward = SkippingReward(UNREWARDED)
    stats = make_trainer(tiny_src, reward).step(ROWS)
    given = [v for v in reward.given[0] if not math.isnan(v)]
    assert stats["reward_nan_count"] == len(UNREWARDED)
    assert stats["reward_mean"] == pytest.approx(sum(given) / len(given))
    assert all(math.isfinite(v) for v in stats.values())


def test_a_step_where_no_response_has_a_reward_fails_naming_the_cause(tiny_src):
    trainer = make_trainer(tiny_src, SkippingReward(range(8)))
    with pytest.raises(LlmpostError, match="no reward applied to any of the 8 responses"):
        trainer.step(ROWS)


def test_early_stopping_ends_the_epochs_at_the_first_minibatch_past_target_kl(tiny_src):
    """4 epochs of 2 minibatches: 8 updates, unless the policy moves past `ppo.target_kl` per token first."""
    def step(target_kl):
        ppo = PPOSettings(mini_batch_size=4, epochs=4, target_kl=target_kl)
        return make_trainer(tiny_src, SkippingReward([]), ppo=ppo, learning_rate=1e-3).step(ROWS)

    off = step(None)
    assert (off["ppo_updates"], off["early_stopped"]) == (8, 0)
    # The first minibatch meets the policy that sampled it (approx-KL 0); the second comes one update later.
    stopped = step(1e-6)
    assert (stopped["ppo_updates"], stopped["early_stopped"]) == (2, 1)
    # approx_kl is the mean of the two minibatches' figures, approx_kl_max the larger: the second's.
    assert stopped["approx_kl_max"] > 1e-6
    assert stopped["approx_kl_max"] == pytest.approx(2 * stopped["approx_kl"], abs=1e-7)
    assert off["approx_kl_max"] > off["approx_kl"]
