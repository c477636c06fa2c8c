"""`llmpost dpo` settings: loss names, loss weights and label smoothing are checked before anything loads."""

from __future__ import annotations

import pytest

from llmpost.cli.stage_runner import resolve_stage_config
from llmpost.errors import ConfigError


def dpo_config(**flags):
    return resolve_stage_config("dpo", flags=flags)


def test_defaults_train_on_builtin_pairs_with_the_sigmoid_loss():
    cfg = dpo_config()
    assert cfg.data == "builtin:arith-pairs" and cfg.eval_pairs == "builtin:arith-pairs:test"
    assert cfg.loss == ["sigmoid"] and cfg.beta == 0.1


def test_comma_separated_losses_become_a_list():
    cfg = dpo_config(loss="sigmoid, sft", loss_weights=[1.0, 0.5])
    assert cfg.loss == ["sigmoid", "sft"] and cfg.loss_weights == [1.0, 0.5]


def test_a_misspelled_loss_names_the_closest_one():
    with pytest.raises(ConfigError) as err:
        dpo_config(loss="sigmod")
    assert "did you mean 'sigmoid'" in str(err.value) and "ipo" in str(err.value)


@pytest.mark.parametrize("flags, message", [
    ({"loss": "sigmoid,sft", "loss_weights": [1.0]}, "loss_weights has 1 values but loss has 2"),
    ({"loss": "exo_pair"}, "exo_pair needs label_smoothing > 0"),
    ({"label_smoothing": 0.5}, "label_smoothing"),
    ({"beta": 0}, "beta"),
    ({"expand": "pairs"}, "expand"),
])
def test_inconsistent_settings_fail_with_the_key_named(flags, message):
    with pytest.raises(ConfigError) as err:
        dpo_config(**flags)
    assert message in str(err.value)
