"""Config layering: precedence, --set parsing, every problem listed, did-you-mean."""

from __future__ import annotations

import pytest

from llmpost.config.resolve import load_yaml, parse_sets, resolve
from llmpost.errors import ConfigError
from llmpost.stages.sft import Config


def test_precedence_lowest_to_highest():
    layers = [{"seed": 1, "batch_size": 2, "max_steps": 3}, {"seed": 2, "batch_size": 5}, {"seed": 3}]
    cfg = resolve(Config, layers)
    assert (cfg.seed, cfg.batch_size, cfg.max_steps) == (3, 5, 3)


def test_nested_layers_merge_instead_of_replacing():
    cfg = resolve(Config, [{"lora": {"r": 4, "alpha": 8}}, {"lora": {"enabled": True}}])
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.enabled) == (4, 8, True)


def test_parse_sets_reads_yaml_values():
    assert parse_sets(["a.b=1", "c=[x, y]", "d=true", "e=hello world", "f=null"]) == {
        "a": {"b": 1}, "c": ["x", "y"], "d": True, "e": "hello world", "f": None}


def test_parse_sets_rejects_missing_equals():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_sets(["max_steps"])


def test_every_problem_is_listed_with_its_path():
    with pytest.raises(ConfigError) as err:
        resolve(Config, [{"max_stpes": 3, "lora": {"rr": 2}, "batch_size": 0}])
    problems = err.value.problems
    assert len(problems) == 3
    text = "\n".join(problems)
    assert "did you mean `max_steps`" in text and "did you mean `lora.r`" in text and "batch_size" in text


def test_load_yaml_reports_line_of_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [1, 2\n")
    with pytest.raises(ConfigError, match="line"):
        load_yaml(bad)


def test_load_yaml_wants_a_mapping(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(bad)
