"""Recipe schema, references, layering and the stage graph (no training here)."""

from __future__ import annotations

import pytest
import yaml
from conftest import run_cli

from llmpost.errors import ConfigError
from llmpost.pipeline.dag import ancestors, descendants, find_cycle, selection, topological_order
from llmpost.pipeline.recipe import build_recipe, load_recipe, with_refs

GOOD = {
    "name": "demo",
    "defaults": {"seed": 3, "lora": {"enabled": True}, "max_steps": 7},
    "stages": {
        "check": {"uses": "eval", "model": "{{ sft }}"},
        "sft": {"uses": "sft", "max_steps": 5},
        "sft2": {"uses": "sft", "model": "{{ sft }}", "data": "{{ sft }}/data:train", "out": "second"},
    },
}


def test_order_names_defaults_and_references():
    recipe = build_recipe(GOOD)
    assert list(recipe.stages) == ["sft", "check", "sft2"]  # after what they need, else file order
    sft, check, sft2 = recipe.stages.values()
    assert (sft.out, check.out, sft2.out) == ("demo-sft", "demo-check", "second")
    assert sft.config.seed == check.config.seed == 3
    assert sft.config.lora.enabled and not hasattr(check.config, "lora")  # a default applies where it fits
    assert sft.config.max_steps == 5 and sft2.config.max_steps == 7  # the stage block beats `defaults:`
    assert check.needs == ["sft"] and sft2.needs == ["sft"]
    assert check.config.model == "demo-sft"  # validated with the name the reference will point to
    filled = with_refs(sft2, {"sft": "demo-sft@v4"})
    assert filled.model == "demo-sft@v4" and filled.data == "demo-sft@v4/data:train"


def test_precedence_recipe_then_config_file_then_set():
    overlay = {"defaults": {"seed": 10}, "stages": {"sft": {"max_steps": 20, "batch_size": 4}}}
    sets = {"stages": {"sft": {"max_steps": 30}}, "defaults": {"seed": 11}}
    recipe = build_recipe(GOOD, [("--config", overlay), ("--set", sets)])
    sft = recipe.stages["sft"].config
    assert (sft.max_steps, sft.batch_size, sft.seed) == (30, 4, 11)
    assert recipe.stages["check"].config.seed == 11


def refused(recipe: dict) -> ConfigError:
    """The error `build_recipe` raises for `recipe`, which it must refuse."""
    with pytest.raises(ConfigError) as exc:
        build_recipe(recipe)
    return exc.value


def assert_listed(problems: list[str], expected: list[str]) -> None:
    """Every expected problem appears among the reported ones."""
    text = "\n".join(problems)
    for line in expected:
        assert line in text, f"missing: {line}\n{text}"


def test_every_problem_is_reported_at_once():
    bad = {
        "nme": "x",
        "name": "demo",
        "stages": {"sft": {"uses": "sft", "lerning_rate": 0.1}},
    }
    with pytest.raises(ConfigError) as exc:
        build_recipe(bad)
    assert exc.value.problems == ["nme: unknown key; did you mean `name`?"]  # the top level first

    bad = {
        "name": "demo",
        "defaults": {"max_step": 3, "out": "x", "model": "{{ sft }}"},
        "stages": {
            "sft": {"uses": "sft", "lerning_rate": 0.1, "max_steps": "many"},
            "dpo": {"uses": "dpoo"},
            "ev": {"uses": "eval", "model": "{{ sfx }}"},
            "a": {"uses": "eval", "model": "{{ b }}"},
            "b": {"uses": "eval", "model": "{{ a }}"},
            "me": {"uses": "eval", "model": "{{ me }}"},
            "noop": {"model": "tiny"},
        },
    }
    assert_listed(refused(bad).problems, [
        "stages.sft.lerning_rate: unknown key; did you mean `learning_rate`?",
        "stages.sft.max_steps: Input should be a valid integer",
        "stages.dpo.uses: unknown stage 'dpoo'",
        "stages.ev.model: `{{ sfx }}` names no stage; did you mean `sft`?",
        "stages: references form a cycle: a -> b -> a",
        "stages.me.model: a stage cannot use its own output",
        "stages.noop.uses: missing",
        "defaults.max_step: not a setting of any stage in this recipe; did you mean `max_steps`?",
        "defaults.out: every stage writes its own artifact",
        "defaults.model: `{{ sft }}`: stage references belong in a stage block",
    ])


def test_overrides_must_name_stages_and_keys():
    with pytest.raises(ConfigError) as exc:
        build_recipe(GOOD, [("--set", {"beta": 0.2, "stages": {"sfft": {"seed": 1}, "sft": {"sedd": 1}}})])
    text = "\n".join(exc.value.problems)
    assert "--set beta: in a recipe run, write stages.ID.beta=" in text
    assert "--set stages.sfft: no such stage; did you mean `sft`?" in text
    assert "stages.sft.sedd: unknown key; did you mean `seed`?" in text


def test_two_stages_cannot_write_one_name():
    clash = {"name": "d", "stages": {"a": {"uses": "eval", "out": "same"}, "b": {"uses": "eval", "out": "same"}}}
    with pytest.raises(ConfigError) as exc:
        build_recipe(clash)
    assert "stages.b.out: `same` is also written by stage `a`" in exc.value.problems[0]


def test_load_recipe_reads_yaml_and_set_strings(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    recipe = load_recipe(path, sets=["stages.sft.max_steps=9", "defaults.seed=2"])
    assert recipe.stages["sft"].config.max_steps == 9 and recipe.stages["sft2"].config.seed == 2
    assert recipe.source["overrides"]["--set"] == {"stages": {"sft": {"max_steps": 9}}, "defaults": {"seed": 2}}


def test_graph_helpers():
    needs = {"sft": [], "rm": ["sft"], "ppo": ["sft", "rm"], "dpo": ["sft"], "ev": []}
    assert topological_order(needs, ["ppo", "rm", "sft", "dpo", "ev"]) == ["sft", "rm", "ppo", "dpo", "ev"]
    assert find_cycle(needs) is None and find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert ancestors(needs, {"ppo"}) == {"sft", "rm"} and descendants(needs, {"rm"}) == {"ppo"}
    assert selection(needs, only=["dpo"], until=[]) == {"dpo"}
    assert selection(needs, only=[], until=["ppo"]) == {"sft", "rm", "ppo"}
    assert selection(needs, only=[], until=[]) == set(needs)


def test_cli_bad_recipe_exits_2_listing_problems(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: demo\nstages:\n  sft: {uses: sft, lerning_rate: 0.1}\n  ev: {uses: eval, model: '{{ sfx }}'}\n")
    proc = run_cli("run", path, "--dry-run", store=tmp_path / "store")
    assert proc.returncode == 2
    assert "invalid recipe (2 problems)" in proc.stderr and "did you mean `learning_rate`?" in proc.stderr
    assert "Traceback" not in proc.stderr
    unknown = run_cli("run", tmp_path / "missing.yaml", store=tmp_path / "store")
    assert unknown.returncode == 2 and "does not exist" in unknown.stderr


def test_cli_print_config_shows_every_stage(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    proc = run_cli("run", path, "--print-config", "--set", "stages.sft.seed=8")
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    assert list(printed["stages"]) == ["sft", "check", "sft2"]
    assert printed["stages"]["sft"]["seed"] == 8 and printed["stages"]["sft"]["uses"] == "sft"


LAUNCHED = {"launcher": "torchrun", "num_processes": 2}


def test_launch_blocks_are_validated_with_every_problem_listed():
    bad = {
        "name": "demo",
        "defaults": {"launch": LAUNCHED},
        "stages": {
            "sft": {"uses": "sft", "launch": {"launcher": "torchrun", "num_procs": 2}},
            "dpo": {"uses": "dpo", "model": "{{ sft }}", "launch": {**LAUNCHED, "deepspeed": "zero2", "fsdp": True}},
            "rm": {"uses": "rm", "launch": {"launcher": "torchrn"}},
            "ppo": {"uses": "ppo", "model": "{{ sft }}", "launch": {**LAUNCHED, "fsdp": True}},
            "grpo": {"uses": "grpo", "launch": "torchrun"},
            "check": {"uses": "eval", "model": "{{ dpo }}", "launch": LAUNCHED},
        },
    }
    err = refused(bad)
    assert err.exit_code == 2
    assert_listed(err.problems, [
        "defaults.launch: how a stage runs is set per stage: stages.ID.launch",
        "stages.sft.launch.num_procs: unknown key; did you mean `num_processes`?",
        "stages.dpo.launch: Value error, choose one of deepspeed and fsdp, not both",
        "stages.rm.launch.launcher: Input should be 'none', 'torchrun' or 'accelerate' (got 'torchrn')",
        "stages.ppo.launch: Value error, ppo runs llmpost's own PPO loop, not a transformers Trainer",
        "stages.grpo.launch: expected a mapping",
        "stages.check.launch: the eval stage runs in one process and cannot be launched",
    ])
    assert len(err.problems) == 7


def test_launch_is_read_with_its_overrides_and_engines_reach_the_trainer():
    raw = {"name": "demo", "stages": {"sft": {"uses": "sft", "launch": LAUNCHED},
                                      "dpo": {"uses": "dpo", "model": "{{ sft }}"}}}
    recipe = build_recipe(raw, [("--set", {"stages": {"sft": {"launch": {"num_processes": 4}},
                                                      "dpo": {"launch": {"launcher": "accelerate",
                                                                         "deepspeed": "zero3"}}}})])
    sft, dpo = recipe.stages["sft"], recipe.stages["dpo"]
    assert (sft.launch.launcher, sft.launch.num_processes) == ("torchrun", 4)
    assert sft.config == build_recipe({"name": "demo", "stages": {"sft": {"uses": "sft"}}}).stages["sft"].config
    assert dpo.launch.launcher == "accelerate"
    # as `--deepspeed zero3` does: the engine is a trainer argument, recorded in the config
    assert dpo.config.trainer["deepspeed"]["zero_optimization"]["stage"] == 3
    assert with_refs(dpo, {"sft": "demo-sft@v1"}).trainer == dpo.config.trainer


def test_adding_launch_reuses_the_artifact_of_a_one_process_run(tmp_path):
    from llmpost.artifacts.store import Store
    from llmpost.pipeline.decisions import REUSE, RUN, decide_stages

    store = Store(tmp_path / "store")
    plain = {"name": "demo", "stages": {"sft": {"uses": "sft", "max_steps": 2}}}
    (first,) = decide_stages(build_recipe(plain), store, selected={"sft"}, force=set())
    assert first.action == RUN
    with store.begin(first.out) as pending:  # what the one-process run published
        pending.finalize({"stage": "sft", "config": first.cfg.model_dump(mode="json"),
                          "fingerprint": first.prepared[1]})

    launched = {"name": "demo", "stages": {"sft": {"uses": "sft", "max_steps": 2, "launch": LAUNCHED}}}
    (again,) = decide_stages(build_recipe(launched), store, selected={"sft"}, force=set())
    assert again.action == REUSE and again.artifact.ref == "demo-sft@v1"


def test_a_stage_block_or_override_cannot_set_through_trainer_what_a_key_sets():
    raw = {"name": "demo", "stages": {"sft": {"uses": "sft", "trainer": {"lr_scheduler_type": "linear"}},
                                      "dpo": {"uses": "dpo", "model": "{{ sft }}", "trainer": {"beta": 0.5}}}}
    with pytest.raises(ConfigError) as exc:
        build_recipe(raw, [("--set", {"stages": {"sft": {"trainer": {"num_train_epochs": 2}}}})])
    assert sorted(exc.value.problems) == [
        "stages.dpo.trainer.beta: llmpost sets this itself; use `beta` (--beta)",
        "stages.sft.trainer.num_train_epochs: llmpost sets this itself; use `epochs` (--epochs)",
    ]


def test_a_recipe_stage_resolves_its_overrides_as_the_stage_command_does(tmp_path):
    from llmpost.cli.stage_runner import resolve_stage_config

    file = tmp_path / "sft.yaml"
    file.write_text("max_steps: 7\nbatch_size: 4\nseed: 1\n")
    command = resolve_stage_config("sft", flags={}, config_file=file, sets=["seed=3", "lora.r=4"])
    recipe = build_recipe({"name": "demo", "stages": {"sft": {"uses": "sft", "max_steps": 2, "batch_size": 2}}},
                          [("--config", {"stages": {"sft": yaml.safe_load(file.read_text())}}),
                           ("--set", {"stages": {"sft": {"seed": 3, "lora": {"r": 4}}}})])
    assert recipe.stages["sft"].config == command.model_copy(update={"out": "demo-sft"})


def test_a_recipe_may_list_its_seeds_and_bad_ones_are_listed_with_the_rest():
    assert build_recipe({**GOOD, "seeds": [0, 1, 2]}).seeds == [0, 1, 2]
    assert build_recipe(GOOD).seeds is None  # no `seeds:`: one run, as before
    err = refused({**GOOD, "seeds": [1, 1, -2], "defaults": {"sed": 1}})
    assert_listed(err.problems, ["seeds: seeds are 0 or more: -2", "seeds: each seed once: 1 repeated",
                                 "defaults.sed: not a setting of any stage"])
    assert_listed(refused({**GOOD, "seeds": []}).problems, ["seeds: give at least one seed"])


def test_cli_print_config_with_seeds_shows_each_seeds_stages(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "defaults": {"max_steps": 7}, "seeds": [0, 4]}))
    proc = run_cli("run", path, "--print-config")
    assert proc.returncode == 0, proc.stderr
    first, second = yaml.safe_load_all(proc.stdout)
    assert first["seed"] == 0 and first["stages"]["sft"]["out"] == "demo-sft"
    assert second["seed"] == 4 and second["stages"]["check"]["model"] == "demo-sft-seed4"
    assert {stage["seed"] for stage in second["stages"].values()} == {4}
    flag = yaml.safe_load_all(run_cli("run", path, "--print-config", "--seeds", "5").stdout)
    assert [printed["seed"] for printed in flag] == [5], "--seeds beats the recipe's `seeds:`"
    bad = run_cli("run", path, "--dry-run", "--seeds", "1,x", store=tmp_path / "store")
    assert bad.returncode == 2 and "--seeds 1,x: expected whole numbers" in bad.stderr
