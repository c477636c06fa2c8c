"""The reward registry: specs, weights, user functions, reward models, and the errors a user sees."""

from __future__ import annotations

import math
import textwrap

import pytest

from llmpost.artifacts.store import Store
from llmpost.errors import ConfigError, DataError
from llmpost.rewards.registry import (
    CombinedReward,
    RewardError,
    build_reward,
    check_reward_spec,
    parse_reward_spec,
    reward_model_refs,
)

PROMPTS = [[{"role": "user", "content": f"What is {i}+1?"}] for i in range(3)]
ROWS = [{"prompt": p, "answer": str(i + 1), "row_number": i + 1} for i, p in enumerate(PROMPTS)]


@pytest.mark.parametrize("spec, expected", [
    ("exact_match", ("exact_match", 1.0)),
    ("format=0.2", ("format", 0.2)),
    ("rm:sft-rm=0.5", ("rm:sft-rm", 0.5)),
    ("length=-0.1", ("length", -0.1)),
    ("length:max=200", ("length:max=200", 1.0)),  # the "=" belongs to the option
    ("length:min=5,max=200=0.1", ("length:min=5,max=200", 0.1)),
    ("code_exec:cpu=1,wall=2", ("code_exec:cpu=1,wall=2", 1.0)),
    ("judge:jm?max_new_tokens=4", ("judge:jm?max_new_tokens=4", 1.0)),
    ("judge:jm?max_new_tokens=4=0.3", ("judge:jm?max_new_tokens=4", 0.3)),
    ("my_rewards.py:score=2", ("my_rewards.py:score", 2.0)),
    (" exact_match = 3 ", ("exact_match", 3.0)),
])
def test_parse_reward_spec(spec, expected):
    assert parse_reward_spec(spec) == expected


def test_combined_reward_sums_with_weights_and_reports_each():
    reward = CombinedReward(["exact_match", "format=0.5", "length:max=40=-1"], store=None)
    completions = ["<think>0+1</think><answer>1</answer>", "#### 3", "x" * 100]
    total, per = reward(PROMPTS, completions, ROWS)
    assert reward.names == ["exact_match", "format", "length"]
    assert per == {"exact_match": [1.0, 0.0, 0.0], "format": [1.0, 0.0, 0.0], "length": [0.0, 0.0, -1.0]}
    assert total == [1.5, 0.0, 1.0]  # weight -1 turns the length penalty into +1: weights are applied as given


def test_not_applicable_values_leave_the_total_alone():
    reward = CombinedReward(["exact_match", "format=0.5"], store=None)
    rows = [dict(ROWS[0]), {**ROWS[1], "answer": None}]
    total, per = reward(PROMPTS[:2], ["#### 1", "<think>a</think><answer>2</answer>"], rows)
    assert per["exact_match"][0] == 1.0 and math.isnan(per["exact_match"][1])
    assert total == [1.0, 0.5]


def test_unknown_reward_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean `exact_match`"):
        build_reward("exact_mach")
    assert "unknown reward" in check_reward_spec("nonsense")
    assert check_reward_spec("format:(") and check_reward_spec("exact_match:x")  # bad regex, stray option
    assert check_reward_spec("rm:anything") is None and check_reward_spec("pkg.mod:fn=2") is None


def test_check_rows_names_the_missing_column():
    reward = CombinedReward(["exact_match", "code_exec"], store=None)
    with pytest.raises(DataError, match="code_exec needs a 'tests' column; prompts.jsonl has: answer, prompt"):
        reward.check_rows(ROWS, "prompts.jsonl")


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_user_function_gets_trl_arguments(tmp_path):
    write(tmp_path / "my_rewards.py", """
        def shout(prompts, completions, answer, **kwargs):
            # TRL's conversational form: completions are assistant message lists
            return [float(c[0]["content"].isupper()) + (0.5 if a == "2" else 0.0) for c, a in zip(completions, answer)]
    """)
    reward = CombinedReward([f"{tmp_path}/my_rewards.py:shout=2"], store=None)
    total, per = reward(PROMPTS, ["YES", "no", "NO"], ROWS)
    assert reward.names == ["my_rewards.py:shout"]
    assert per["my_rewards.py:shout"] == [1.0, 0.5, 1.0] and total == [2.0, 1.0, 2.0]
    assert reward.describe()[0]["sha256"]  # the file's contents are recorded in eval.json


def test_module_function(tmp_path, monkeypatch):
    write(tmp_path / "team_rewards.py", "def one(prompts, completions, **kw):\n    return [1] * len(completions)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert build_reward("team_rewards:one")(PROMPTS, ["a", "b", "c"], ROWS) == [1, 1, 1]


def test_missing_user_function_lists_what_the_file_has(tmp_path):
    write(tmp_path / "r.py", "def good(prompts, completions, **kw):\n    return [0.0] * len(completions)\n")
    with pytest.raises(ConfigError, match="has no function 'bad'") as err:
        build_reward(f"{tmp_path}/r.py:bad")
    assert "good" in err.value.hint
    with pytest.raises(ConfigError, match="does not exist"):
        build_reward(f"{tmp_path}/nope.py:fn")
    with pytest.raises(ConfigError, match="cannot be imported"):
        build_reward("no_such_module_xyz:fn")


def test_a_reward_that_raises_names_the_function_and_the_row(tmp_path):
    write(tmp_path / "fragile.py", """
        def picky(prompts, completions, **kwargs):
            return [1.0 / len(c[0]["content"]) for c in completions]  # an empty completion divides by zero
    """)
    reward = CombinedReward(["exact_match", f"{tmp_path}/fragile.py:picky"], store=None)
    with pytest.raises(RewardError) as err:
        reward(PROMPTS, ["ok", "", "fine"], ROWS)
    message = str(err.value)
    assert "fragile.py:picky" in message and "ZeroDivisionError" in message
    assert "data row 2" in message and "What is 1+1?" in message
    assert err.value.exit_code == 1


def test_a_reward_returning_the_wrong_shape_is_an_error(tmp_path):
    write(tmp_path / "bad.py", """
        def short(prompts, completions, **kwargs):
            return [1.0]
        def text(prompts, completions, **kwargs):
            return ["high"] * len(completions)
    """)
    with pytest.raises(RewardError, match="returned 1 values for 3 completions"):
        CombinedReward([f"{tmp_path}/bad.py:short"], store=None)(PROMPTS, ["a", "b", "c"], ROWS)
    with pytest.raises(RewardError, match="returned str 'high' for data row 1"):
        CombinedReward([f"{tmp_path}/bad.py:text"], store=None)(PROMPTS, ["a", "b", "c"], ROWS)


def test_trl_functions_take_trl_keyword_arguments():
    reward = CombinedReward(["exact_match", "format=0.2"], store=None)
    exact, fmt = reward.trl_functions()
    assert [exact.__name__, fmt.__name__] == ["exact_match", "format"]
    completions = [[{"role": "assistant", "content": "#### 1"}], [{"role": "assistant", "content": "#### 5"}]]
    values = exact(prompts=PROMPTS[:2], completions=completions, completion_ids=[[1], [2]], answer=["1", "2"],
                   trainer_state=None, log_extra=print, log_metric=print)
    assert values == [1.0, 0.0]


def test_rm_reward_scores_with_a_reward_model_artifact(tmp_path):
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    from llmpost.models.tiny import tiny_path
    from llmpost.rewards.reward_model import RewardModelScorer

    store = Store(tmp_path / "store")
    tokenizer = AutoTokenizer.from_pretrained(tiny_path())
    torch.manual_seed(0)
    with store.begin("toy-rm") as pending:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(tiny_path(), num_labels=1)
        LlamaForSequenceClassification(config).save_pretrained(pending.dir / "model")
        tokenizer.save_pretrained(pending.dir / "model")
        artifact = pending.finalize({"stage": "rm", "base_model": {"id": "tiny"}})

    reward = CombinedReward(["rm:toy-rm=0.5"], store=store)
    completions = ["#### 1", "a much longer and different answer", "#### 3"]
    total, per = reward(PROMPTS, completions, ROWS)
    expected = RewardModelScorer("toy-rm", store).score(PROMPTS, completions)
    assert per["rm:toy-rm"] == pytest.approx(expected) and len(set(expected)) == 3
    assert total == pytest.approx([0.5 * x for x in expected])
    assert [a.id for a in reward.artifacts] == [artifact.id]
    assert reward_model_refs(["exact_match", "rm:toy-rm=0.5"]) == ["toy-rm"]
