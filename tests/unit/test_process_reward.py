"""`prm:REF` rewards: spec parsing, dense step rewards (scale and token placement) and PPO's use of them."""

from __future__ import annotations

import math

import pytest
import torch

from llmpost.errors import ConfigError
from llmpost.rewards.process import aggregate, split_steps, step_ends
from llmpost.rewards.process_reward import parse_prm_arg, step_rewards
from llmpost.rewards.registry import check_reward_spec, display_names, reward_model_refs
from llmpost.rewards.spec import parse_reward_spec
from llmpost.rl.dense import covering_tokens, placed_rewards
from llmpost.rl.rollout import rollout_from_token_lists

SOLUTION = "7+5=12\n12-3=9\n#### 9"
PROMPT = [{"role": "user", "content": "Ann has 7 shells. Ann finds 5 more. Then Ann loses 3. How many now?"}]


@pytest.fixture(scope="module")
def tiny_tok():
    from llmpost.models.load import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model("tiny"))


@pytest.fixture(scope="module")
def bpe_tok():
    """A byte-level BPE tokenizer with one token across a step end ("2\\n1") and "é" left as two byte tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for token in ("2Ċ", "2Ċ1", "<eos>"):
        vocab[token] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("2", "Ċ"), ("2Ċ", "1")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    """An untrained PRM: the tiny model with a one-output token-classification head (a valid PRM reference)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from llmpost.models.tiny import tiny_path

    path = tmp_path_factory.mktemp("prm")
    torch.manual_seed(0)
    AutoModelForTokenClassification.from_pretrained(tiny_path(), num_labels=1).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_path()).save_pretrained(path)
    return path


# --- specs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arg,expected", [
    ("my-prm", ("my-prm", "min")),
    ("my-prm@v2:agg=prod", ("my-prm@v2", "prod")),
    ("/data/prms/p1:agg=last", ("/data/prms/p1", "last")),
    ("org/prm:agg=mean", ("org/prm", "mean")),
])
def test_prm_arg_is_a_reference_and_an_aggregation(arg, expected):
    assert parse_prm_arg(arg) == expected


@pytest.mark.parametrize("spec,message", [
    ("prm:", "needs a process reward model"),
    ("prm:x:agg=median", "agg must be one of min, prod, last, mean, got 'median'"),
    ("prm:x:agg=0.5", "agg must be one of min, prod, last, mean"),
    ("prm:x:top=3", "unknown option 'top=3'"),
    ("prm", "needs a process reward model"),
])
def test_a_bad_prm_spec_says_what_is_accepted(spec, message):
    assert message in check_reward_spec(spec)


def test_weights_lineage_and_names_of_prm_rewards():
    assert parse_reward_spec("prm:x:agg=last=0.5") == ("prm:x:agg=last", 0.5)
    assert parse_reward_spec("prm:x=2") == ("prm:x", 2.0)
    assert check_reward_spec("prm:my-prm:agg=prod=0.5") is None
    assert reward_model_refs(["exact_match", "prm:/tmp/p:agg=mean=0.5", "rm:r"]) == ["/tmp/p", "r"]
    # the default aggregation is not spelled out, another one is
    assert display_names(["prm:a", "prm:b:agg=min", "prm:c:agg=last"]) == ["prm:a", "prm:b", "prm:c:agg=last"]


def test_dense_ppo_needs_exactly_one_prm():
    from pydantic import ValidationError

    from llmpost.stages.ppo import Config, inputs

    for rewards in (["exact_match"], ["prm:a", "prm:b"]):
        with pytest.raises(ValidationError, match="exactly one"):
            Config(rewards=rewards, process_rewards="dense")
    cfg = Config(rewards=["prm:/tmp/p:agg=last=0.5", "exact_match"], process_rewards="dense")
    assert inputs(cfg)["models"] == ["tiny", "/tmp/p"]  # the PRM is a model input: lineage and fingerprint


# --- where steps end and what they get ----------------------------------------------------------


@pytest.mark.parametrize("text", [SOLUTION, "  7+5=12 \n\n12-3=9\r\n#### 9\n", "7+5=12\n12-", "", "\n \n"])
def test_step_ends_are_the_last_characters_of_the_steps(text):
    steps = split_steps(text)
    ends = step_ends(text)
    assert len(ends) == len(steps)
    for step, end in zip(steps, ends, strict=True):
        assert text[: end + 1].endswith(step)


@pytest.mark.parametrize("how", ["min", "prod", "last", "mean"])
def test_step_rewards_sum_to_the_aggregate(how):
    scores = [0.9, 0.5, 0.7, 0.2]
    assert sum(step_rewards(scores, how)) == pytest.approx(aggregate(scores, how))
    assert step_rewards([], how) == []


def test_min_charges_a_step_only_when_it_lowers_the_running_minimum():
    assert step_rewards([0.9, 0.5, 0.7, 0.2], "min") == pytest.approx([0.9, -0.4, 0.0, -0.3])
    assert step_rewards([0.9, 0.5, 0.7, 0.2], "last") == pytest.approx([0.9, -0.4, 0.2, -0.5])


def test_step_ends_land_on_the_tokens_that_finish_them(tiny_tok):
    """The tiny tokenizer: "12" is one token, "\\n" another; the end of each step is its last digit."""
    ids = tiny_tok(SOLUTION, add_special_tokens=False)["input_ids"] + [tiny_tok.eos_token_id]
    indices = covering_tokens(tiny_tok, ids, step_ends(SOLUTION))
    assert [tiny_tok.convert_ids_to_tokens(ids[i]) for i in indices] == ["12", "9", "9"]
    assert indices == [4, 10, 14]


def test_a_token_across_a_step_end_or_a_split_character_takes_the_reward(bpe_tok):
    """Another tokenizer than the PRM's: "2\\n1" is one token, and "é" ends only with its second byte."""
    ids = bpe_tok(SOLUTION, add_special_tokens=False)["input_ids"]
    assert bpe_tok.convert_ids_to_tokens(ids)[5] == "2Ċ1"
    assert covering_tokens(bpe_tok, ids, step_ends(SOLUTION)) == [5, 10, 17]

    text = "prix 5é\nok"
    ids = bpe_tok(text, add_special_tokens=False)["input_ids"] + [bpe_tok.eos_token_id]
    assert bpe_tok.decode(ids[:7]).endswith("\ufffd")  # the first byte of "é" alone
    assert covering_tokens(bpe_tok, ids, step_ends(text)) == [7, 10]


def test_placed_rewards_on_a_rollout_cut_short_and_one_ending_in_eos(tiny_tok):
    """A response cut at max tokens has no newline after its last line: that partial line is still a step."""
    cut = "7+5=12\n12-"
    completions = [tiny_tok(SOLUTION, add_special_tokens=False)["input_ids"] + [tiny_tok.eos_token_id],
                   tiny_tok(cut, add_special_tokens=False)["input_ids"]]
    rollout = rollout_from_token_lists([[5, 6], [5]], completions, tiny_tok)
    assert rollout.completions == [SOLUTION, cut]
    placed = [list(zip(step_ends(SOLUTION), [0.5, -0.25, 0.125], strict=True)),
              list(zip(step_ends(cut), [0.75, -0.5], strict=True))]
    rewards = placed_rewards(tiny_tok, rollout.response_ids, rollout.response_mask, placed)
    assert rewards.shape == rollout.response_ids.shape
    assert rewards[0].nonzero().flatten().tolist() == [4, 10, 14]
    assert rewards[1].nonzero().flatten().tolist() == [4, 7]  # "12" and the cut line's last token, "-"
    assert rewards[0, [4, 10, 14]].tolist() == [0.5, -0.25, 0.125]
    assert rewards[1, 7].item() == -0.5 and rollout.response_lengths[1] == 8  # no EOS after it


# --- the PRM as a reward, and PPO's dense rewards ------------------------------------------------


def test_prm_reward_aggregates_and_dense_rewards_sum_to_it(prm_dir):
    from llmpost.rewards.process_reward import DenseProcessRewards, ProcessReward
    from llmpost.rewards.registry import CombinedReward

    completions = [SOLUTION, "7+5=12\n12-3=10\n#### 10", "", "#### 9"]
    prompts = [PROMPT] * 4
    rows = [{"prompt": PROMPT, "answer": "9"}, {"prompt": PROMPT, "answer": "9"}, {"prompt": PROMPT}, {"prompt": PROMPT}]
    reward = CombinedReward([f"prm:{prm_dir}:agg=last=0.5", "exact_match"])
    prm = reward.functions[0]
    assert isinstance(prm, ProcessReward) and prm.artifacts == []  # a plain directory is no artifact
    steps = prm.step_scores(prompts, completions)
    assert [len(s) for s in steps] == [3, 3, 0, 1]
    assert prm(prompts, completions, rows) == [aggregate(s, "last") for s in steps]

    dense = DenseProcessRewards(reward)
    placed, parts = dense.steps(prompts, completions, rows)
    assert parts == {reward.names[0]: [aggregate(s, "last") for s in steps]}
    for text, pairs, scores in zip(completions, placed, steps, strict=True):
        assert [offset for offset, _ in pairs] == step_ends(text)
        assert sum(r for _, r in pairs) == pytest.approx(0.5 * aggregate(scores, "last"))  # the weight applies
    totals, parts = dense.sequence(prompts, completions, rows)
    assert totals == [1.0, 0.0, 0.0, 0.0]  # exact_match alone; 0, not NaN, where it does not apply
    assert list(parts) == ["exact_match"] and math.isnan(parts["exact_match"][2])


def test_dense_needs_one_loaded_prm():
    from llmpost.rewards.process_reward import DenseProcessRewards
    from llmpost.rewards.registry import CombinedReward

    with pytest.raises(ConfigError, match="exactly one prm"):
        DenseProcessRewards(CombinedReward(["exact_match"]))


@pytest.mark.parametrize("normalize", [False, True])
def test_gae_sees_each_step_reward_where_its_step_ends(tiny_tok, normalize):
    """gamma = lam = 1 and no KL: a token's return is every reward from it on, so it drops after each step end."""
    from llmpost.models.load import resolve_model
    from llmpost.rl.policy import load_policy
    from llmpost.rl.settings import KLSettings, PPOSettings, RolloutSettings
    from llmpost.rl.trainer import PPOTrainer

    rows = [{"prompt": PROMPT}, {"prompt": PROMPT}]
    step_values = [[0.5, -0.25, 0.125], [0.25]]

    def sequence(prompts, completions, rows):
        return [1.0, 2.0], {"answer": [1.0, 2.0]}

    def steps(prompts, completions, rows):
        return [list(zip(step_ends(c), v, strict=True)) for c, v in zip(completions, step_values, strict=True)], {}

    torch.manual_seed(0)
    policy, reference = load_policy(resolve_model("tiny"), qlora=False, lora=None)
    ppo = PPOSettings(mini_batch_size=2, gamma=1.0, lam=1.0, whiten_advantages=False, reward_normalize=normalize)
    trainer = PPOTrainer(policy, reference, tiny_tok, sequence, rows, rollout=RolloutSettings(max_new_tokens=8),
                         kl=KLSettings(coef=0.0), ppo=ppo, batch_size=2, steps=1, step_reward_fn=steps)
    completions = [tiny_tok(SOLUTION, add_special_tokens=False)["input_ids"] + [tiny_tok.eos_token_id],
                   tiny_tok("#### 9", add_special_tokens=False)["input_ids"]]
    rollout = rollout_from_token_lists([[5, 6], [5, 6]], completions, tiny_tok)
    scores, _ = trainer.score(rows, rollout)
    in_response, _ = trainer.score_steps(rows, rollout)
    batch, _ = trainer.experience(rollout, scores, in_response)

    totals = torch.tensor([1.0 + 0.375, 2.0 + 0.25])
    mean, std = (totals.mean().item(), totals.std(unbiased=False).item()) if normalize else (0.0, 1.0)
    scale = std + 1e-8 if normalize else 1.0
    expected = torch.zeros(16)
    for t in range(16):  # reward-to-go of response 0: steps end at 4, 10, 14, the sequence reward at 15
        expected[t] = sum(r for end, r in zip([4, 10, 14], step_values[0], strict=True) if end >= t) / scale
        expected[t] += (1.0 - mean) / scale
    assert torch.allclose(batch["returns"][0, :16], expected, atol=1e-5)
    assert batch["returns"][0, 0].item() == pytest.approx((1.375 - mean) / scale, abs=1e-5)  # the whole reward
    # response 1 ("#### 9", cut without EOS): one step, ending on its last token with the sequence reward
    n = int(rollout.response_lengths[1])
    assert batch["returns"][1, :n].tolist() == pytest.approx([(2.25 - mean) / scale] * n, abs=1e-5)
