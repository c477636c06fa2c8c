"""Config layering: precedence, --set parsing, every problem listed, did-you-mean."""

from __future__ import annotations

import dataclasses

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


def test_a_set_value_with_a_colon_is_text_and_braces_make_a_mapping():
    sets = parse_sets(["judge.system=Reply with one letter: A or B.", "lora={r: 8}"])
    assert sets == {"judge": {"system": "Reply with one letter: A or B."}, "lora": {"r": 8}}


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


# Each stage's learning rates when none is given: (tiny model, LoRA, full fine-tuning).
DEFAULT_LEARNING_RATES = {
    "sft": (3e-3, 2e-4, 2e-5), "rm": (1e-3, 2e-4, 2e-5), "dpo": (1e-4, 2e-4, 2e-5), "kto": (1e-4, 2e-4, 2e-5),
    "grpo": (1e-4, 2e-5, 1e-6), "ppo": (3e-4, 1e-4, 1e-6),
}


@pytest.mark.parametrize("stage", sorted(DEFAULT_LEARNING_RATES))
def test_default_learning_rates_are_decided_once_and_described_truthfully(stage):
    from llmpost.config.base import learning_rate
    from llmpost.stages import load_stage

    config_cls = load_stage(stage).Config
    tiny, lora, full = DEFAULT_LEARNING_RATES[stage]
    plain = config_cls()
    assert learning_rate(plain, is_tiny=True) == tiny
    assert learning_rate(config_cls(lora={"enabled": True}), is_tiny=False) == lora
    assert learning_rate(config_cls(qlora=True), is_tiny=False) == lora
    assert learning_rate(plain, is_tiny=False) == full
    assert learning_rate(config_cls(learning_rate=0.5), is_tiny=True) == 0.5  # a given rate always wins
    description = config_cls.model_fields["learning_rate"].description
    shown = [f"{value:.0e}".replace("e-0", "e-") for value in (tiny, lora, full)]
    assert f"default: {shown[0]} for tiny, {shown[1]} with LoRA, {shown[2]} full fine-tuning" in description


def test_trainer_may_not_set_what_an_llmpost_key_sets_and_every_clash_is_listed():
    from llmpost.stages import load_stage

    dpo = load_stage("dpo").Config
    layers = [{"trainer": {"learning_rate": 0.1, "beta": 0.5, "precompute_ref_log_probs": True,
                           "lr_scheduler_type": "linear"}, "max_stpes": 3}]
    with pytest.raises(ConfigError) as err:
        resolve(dpo, layers)
    assert sorted(err.value.problems) == [
        "max_stpes: unknown key; did you mean `max_steps`?",
        "trainer.beta: llmpost sets this itself; use `beta` (--beta)",
        "trainer.learning_rate: llmpost sets this itself; use `learning_rate` (--lr)",
        "trainer.precompute_ref_log_probs: llmpost sets this itself; use `precompute_ref` (--precompute-ref)",
    ]
    # what llmpost only defaults (the cosine schedule) has no key of its own, so `trainer:` may change it
    assert resolve(dpo, [{"trainer": {"lr_scheduler_type": "linear"}}]).trainer == {"lr_scheduler_type": "linear"}


@pytest.mark.parametrize("stage", ["sft", "rm", "dpo", "kto", "grpo"])
def test_every_trainer_argument_set_from_a_key_is_named_and_defaults_pass_through(stage, tmp_path):
    """Building the real TRL arguments fails when a stage sets an argument from a key it does not name."""
    from types import SimpleNamespace

    from llmpost.stages import load_stage

    module = load_stage(stage)
    cfg = module.Config(max_steps=3, trainer={"lr_scheduler_type": "linear", "save_strategy": "no"})
    args = getattr(module, f"build_{stage}_args")(cfg, SimpleNamespace(work_dir=tmp_path), True)
    assert args.max_steps == 3 and args.learning_rate == cfg.default_learning_rates.tiny
    assert (args.lr_scheduler_type.value, args.save_strategy.value) == ("linear", "no")
    named = module.Config.trainer_args_from_keys
    assert set(named) <= {f.name for f in dataclasses.fields(type(args))}  # no name the class does not have
    assert set(named.values()) <= set(module.Config.model_fields)  # each maps to a real llmpost key


@pytest.mark.parametrize("stage", ["sft", "rm", "dpo", "kto", "grpo"])
def test_gradient_checkpointing_is_off_unless_asked_for(stage, tmp_path):
    """TRL's configs default checkpointing on (slower steps); llmpost's key, off by default, decides."""
    from types import SimpleNamespace

    from llmpost.stages import load_stage

    module = load_stage(stage)
    build = getattr(module, f"build_{stage}_args")
    off = build(module.Config(), SimpleNamespace(work_dir=tmp_path), True)
    on = build(module.Config(gradient_checkpointing=True), SimpleNamespace(work_dir=tmp_path), True)
    assert (off.gradient_checkpointing, on.gradient_checkpointing) == (False, True)


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_bf16_by_default_only_for_real_models_where_the_cpu_computes_it(stage, tmp_path, monkeypatch):
    """On a CPU with AMX a real model trains in bf16 unless told otherwise; tiny stays in fp32 (its measured figures)."""
    from types import SimpleNamespace

    import llmpost.models.precision as precision
    from llmpost.stages import load_stage

    module = load_stage(stage)
    build = getattr(module, f"build_{stage}_args")
    ctx = SimpleNamespace(work_dir=tmp_path)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    for amx in (True, False):
        monkeypatch.setattr(precision, "cpu_has_bf16_matmul", lambda amx=amx: amx)
        assert build(module.Config(), ctx, False).bf16 is amx  # a real model: as the CPU can
        assert build(module.Config(), ctx, True).bf16 is False  # tiny
        assert build(module.Config(bf16=False), ctx, False).bf16 is False  # the key decides
    assert build(module.Config(bf16=True), ctx, True).bf16 is True


def test_an_argument_set_from_a_key_but_not_named_is_a_bug_caught_when_building(tmp_path):
    from trl import SFTConfig

    from llmpost.stages.trainer_args import build_args

    with pytest.raises(RuntimeError, match="does not name \\['weight_decay'\\]"):
        build_args(SFTConfig, Config(), tmp_path, is_tiny=True, from_keys={"weight_decay": 0.1})


def test_stage_layers_put_every_source_in_its_place():
    from llmpost.config.layers import stage_layers

    layers = stage_layers(
        recipe_defaults={"seed": 1, "batch_size": 1, "max_steps": 1, "epochs": 1, "logging_steps": 1},
        recipe_stage={"batch_size": 2, "max_steps": 2, "epochs": 2, "logging_steps": 2},
        config_file={"max_steps": 3, "epochs": 3, "logging_steps": 3},
        flags={"epochs": 4, "logging_steps": 4, "lora.enabled": True, "qlora": None},  # None: flag not given
        sets={"logging_steps": 5},
    )
    cfg = resolve(Config, layers)
    assert (cfg.seed, cfg.batch_size, cfg.max_steps, cfg.epochs, cfg.logging_steps) == (1, 2, 3, 4, 5)
    assert cfg.lora.enabled and not cfg.qlora


def test_tiny_gets_the_measured_defaults_only_for_keys_no_source_set():
    """A bare `llmpost sft` on `tiny` trains the measured way; any given key, or another model, keeps its own."""
    from llmpost.config.base import TrainConfig

    bare = resolve(Config, [{}])
    assert (bare.batch_size, bare.max_steps) == (16, 2000)
    given = resolve(Config, [{"max_steps": 5}])
    assert (given.batch_size, given.max_steps) == (16, 5)
    other = resolve(Config, [{"model": "my-sft"}])
    assert (other.batch_size, other.max_steps) == (TrainConfig().batch_size, TrainConfig().max_steps)


def test_sft_loss_data_follows_its_training_data():
    from llmpost.stages import load_stage

    sft = load_stage("sft").Config
    assert sft().loss_data == "builtin:arith-sft:test"
    assert sft(data="builtin:arith-steps-sft").loss_data == "builtin:arith-steps-sft:test"
    assert sft(data="mine.jsonl").loss_data is None  # no eval loss on the built-in arithmetic
    assert sft(data="mine.jsonl", loss_data="held.jsonl").loss_data == "held.jsonl"
    assert sft(loss_data=None).loss_data is None
