"""The frozen trunk: replaying the layers below a top-layer adapter changes nothing but the work done.

Family by family (`decoder_families.py`, three layers, the bottom
two frozen): logits and hidden states under replay equal the full forward's, the frozen
layers do not run, and the gradient still reaches the trained top layer. Then through the
PPO trainer and then TRL's DPO trainer on the real tiny model, for both ways a LoRA model
keeps its reference: steps with replay give the statistics and the trained weights of steps
without it.
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_lora_artifact
from decoder_families import FAMILIES, left_padded_batch, tiny_model

from llmpost.config.base import LoraSettings
from llmpost.models.trunk import FrozenTrunk
from llmpost.rl.policy import load_policy, response_forward
from llmpost.rl.settings import KLSettings, PPOSettings, RolloutSettings
from llmpost.rl.trainer import PPOTrainer

TOP_LAYERS = r".*\.layers\.[23]\..*_proj"  # tiny has 4 layers: adapters on the top two


def three_layers_bottom_two_frozen(config_cls: str, model_cls: str, extra: dict):
    model = tiny_model(config_cls, model_cls, {**extra, "num_hidden_layers": 3})
    for layer in model.get_decoder().layers[:2]:
        layer.requires_grad_(False)
    return model


@pytest.mark.parametrize("config_cls, model_cls, extra", [f[1:] for f in FAMILIES], ids=[f[0] for f in FAMILIES])
def test_replaying_the_frozen_layers_gives_the_models_own_forward(config_cls, model_cls, extra):
    model = three_layers_bottom_two_frozen(config_cls, model_cls, extra)
    input_ids, attention_mask, position_ids, response_ids = left_padded_batch()
    trunk = FrozenTrunk.of(model)
    assert trunk.depth == 2

    with trunk.capture() as captured:
        full_logits, full_hidden = response_forward(model, input_ids, attention_mask, position_ids, 5)
    calls = []
    watch = model.get_decoder().layers[0].register_forward_pre_hook(lambda *_: calls.append(1))
    with trunk.replay(captured.hidden):
        logits, hidden = response_forward(model, input_ids, attention_mask, position_ids, 5)
    hidden.sum().backward()

    torch.testing.assert_close(logits, full_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hidden, full_hidden.detach(), atol=1e-5, rtol=1e-5)
    top = model.get_decoder().layers[2]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in top.self_attn.parameters())
    assert calls == [1]  # called once, through the swapped forward: the layer's own never ran
    assert "forward" not in vars(model.get_decoder().layers[0])  # its own forward is back
    watch.remove()


def test_computed_once_replays_the_first_forwards_frozen_layers_in_the_later_ones():
    config_cls, model_cls, extra = FAMILIES[0][1:]
    model = three_layers_bottom_two_frozen(config_cls, model_cls, extra)
    input_ids, attention_mask, position_ids, _ = left_padded_batch()
    full = model(input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    calls = []
    watch = model.get_decoder().layers[0].register_forward_pre_hook(lambda *_: calls.append(1))
    with FrozenTrunk.of(model).computed_once():
        first = model(input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
        second = model(input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    watch.remove()

    torch.testing.assert_close(first, full)
    torch.testing.assert_close(second, full, atol=1e-5, rtol=1e-5)
    assert len(calls) == 2 and "forward" not in vars(model.get_decoder().layers[0])  # replayed, then restored


def test_the_depth_is_the_number_of_layers_below_any_trainable_weight_or_adapter():
    from llmpost.models.load import add_lora, load_model, resolve_model

    full = load_model(resolve_model("tiny"))
    assert FrozenTrunk.of(full).depth == 0  # every weight trains
    assert FrozenTrunk.of(full.requires_grad_(False)).depth == 4
    model = add_lora(load_model(resolve_model("tiny")), LoraSettings(r=4, target_modules=TOP_LAYERS))
    assert FrozenTrunk.of(model.get_base_model()).depth == 2
    model.requires_grad_(False)  # a frozen adapter (a reference) still changes its layers' output when active
    assert FrozenTrunk.of(model.get_base_model()).depth == 2


def test_a_replay_that_does_not_reproduce_the_forward_is_given_up_with_a_warning():
    trunk = FrozenTrunk(torch.nn.ModuleList([torch.nn.Identity()] * 3), depth=2)
    with pytest.warns(UserWarning, match="does not reproduce this model's forward"):
        trunk.verify(torch.zeros(2, 3), torch.ones(2, 3))
    assert not trunk.enabled and trunk.verified
    hidden = torch.ones(1)
    with trunk.replay(hidden):  # now a no-op
        assert "forward" not in vars(trunk.layers[0])


@pytest.fixture(scope="module")
def top_adapter_src(tmp_path_factory):
    """A LoRA artifact on tiny's top two layers with weights that change the model, as a trained one would."""
    return tiny_lora_artifact(tmp_path_factory.mktemp("adapter") / "model", LoraSettings(r=4, target_modules=TOP_LAYERS))


ROWS = [{"prompt": [{"role": "user", "content": f"add {i} and {i + 2}"}]} for i in range(8)]


def lengths_reward(prompts, completions, rows):
    values = [float(len(c) % 5) for c in completions]
    return values, {"len_mod_5": values}


def two_steps(src, lora, reuse: bool) -> tuple[list[dict], PPOTrainer]:
    from llmpost.models.load import load_tokenizer

    torch.manual_seed(0)
    policy, reference = load_policy(src, qlora=False, lora=lora)
    trainer = PPOTrainer(policy, reference, load_tokenizer(src), lengths_reward, ROWS,
                         rollout=RolloutSettings(max_new_tokens=8), kl=KLSettings(coef=0.5),
                         ppo=PPOSettings(epochs=2, mini_batch_size=4, reuse_frozen_layers=reuse),
                         batch_size=8, steps=2, learning_rate=1e-2)
    return trainer.train(), trainer


@pytest.mark.parametrize("start", ["lora", "adapter"], ids=["new-lora-adapter-disabled", "lora-artifact-reference-adapter"])
def test_ppo_steps_with_the_trunk_replayed_equal_steps_without(start, top_adapter_src):
    from llmpost.models.load import resolve_model

    src = resolve_model("tiny") if start == "lora" else top_adapter_src
    lora = LoraSettings(r=4, target_modules=TOP_LAYERS) if start == "lora" else None
    replayed, trainer = two_steps(src, lora, reuse=True)
    full, plain = two_steps(src, lora, reuse=False)

    assert trainer.trunk.depth == 2 and trainer.trunk.verified and not plain.trunk.enabled
    assert trainer.reference.kind == ("adapter-disabled" if start == "lora" else "reference-adapter")
    assert replayed[1]["kl"] != 0  # in step 2 the policy has moved from its reference
    for step, (a, b) in enumerate(zip(replayed, full, strict=True), 1):
        for key in ("reward_mean", "kl", "policy_loss", "value_loss", "approx_kl", "grad_norm", "entropy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (step, key)
    trained = dict(trainer.model.named_parameters())
    moved = 0
    for name, p in plain.model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(trained[name], p, atol=1e-5, rtol=1e-4)
            moved += 1
    assert moved > 0


def test_turning_the_replay_off_or_on_neither_reruns_nor_restarts_a_ppo_stage(tmp_path):
    from llmpost.artifacts.store import Store
    from llmpost.pipeline.decisions import config_changes
    from llmpost.pipeline.execute import fingerprint_of
    from llmpost.stages import load_stage
    from llmpost.stages.context import StageContext

    config = load_stage("ppo").Config
    ctx = StageContext(stage="ppo", name="ppo", store=Store(tmp_path))
    on, off = config(), config(ppo={"reuse_frozen_layers": False})
    assert fingerprint_of("ppo", off, ctx) == fingerprint_of("ppo", on, ctx)
    assert fingerprint_of("ppo", config(ppo={"epochs": 2}), ctx) != fingerprint_of("ppo", on, ctx)
    assert config_changes(on.model_dump(mode="json"), off.model_dump(mode="json")) == []


def dpo_steps(src, lora, reuse: bool, work) -> tuple[list[float], object]:
    """Three steps of the dpo stage's own trainer on built-in pairs; the logged losses and the trainer."""
    from datasets import Dataset

    from llmpost.artifacts.store import Store
    from llmpost.stages import load_stage
    from llmpost.stages.context import StageContext
    from llmpost.stages.dpo import build_dpo_args, preference_pairs
    from llmpost.stages.dpo_trainer import TrunkSharingDPOTrainer
    from llmpost.stages.training import load_trainable

    overrides = {"lora": lora.model_dump()} if lora is not None else {}
    cfg = load_stage("dpo").Config(model=str(src.path), max_steps=3, batch_size=4, learning_rate=1e-2,
                                   logging_steps=1, **overrides)
    ctx = StageContext(stage="dpo", name="dpo", store=Store(work / "store"), work_dir=work / "run")
    pairs = preference_pairs(ctx, "builtin:arith-pairs", expand="all")[:12]
    torch.manual_seed(0)
    tokenizer, model, peft_config = load_trainable(src, cfg)
    trainer = TrunkSharingDPOTrainer(model=model, args=build_dpo_args(cfg, ctx, src.is_tiny),
                                     train_dataset=Dataset.from_list(pairs), processing_class=tokenizer,
                                     peft_config=peft_config, reuse_frozen_layers=reuse)
    trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h], trainer


@pytest.mark.parametrize("start", ["lora", "adapter"], ids=["new-lora-adapter-disabled", "lora-artifact-reference-adapter"])
def test_dpo_steps_with_the_trunk_replayed_equal_steps_without(start, top_adapter_src, tmp_path):
    from llmpost.models.load import resolve_model

    src = resolve_model("tiny") if start == "lora" else top_adapter_src
    lora = LoraSettings(enabled=True, r=4, target_modules=TOP_LAYERS) if start == "lora" else None
    replayed, trainer = dpo_steps(src, lora, reuse=True, work=tmp_path / "on")
    full, plain = dpo_steps(src, lora, reuse=False, work=tmp_path / "off")

    assert trainer.trunk.depth == 2 and trainer.trunk.verified and not plain.trunk.enabled
    assert ("ref" in trainer.model.peft_config) == (start == "adapter")
    assert len(replayed) == 3 and replayed[0] != replayed[2]  # it learned
    assert replayed == pytest.approx(full, rel=1e-5)
    trained = dict(trainer.model.named_parameters())
    moved = [name for name, p in plain.model.named_parameters() if p.requires_grad]
    assert moved
    for name in moved:
        torch.testing.assert_close(trained[name], dict(plain.model.named_parameters())[name], atol=1e-5, rtol=1e-4)


def test_turning_the_replay_off_or_on_neither_reruns_nor_restarts_a_dpo_stage(tmp_path):
    from llmpost.artifacts.store import Store
    from llmpost.pipeline.execute import fingerprint_of
    from llmpost.stages import load_stage
    from llmpost.stages.context import StageContext

    config = load_stage("dpo").Config
    ctx = StageContext(stage="dpo", name="dpo", store=Store(tmp_path))
    on, off = config(), config(reuse_frozen_layers=False)
    assert fingerprint_of("dpo", off, ctx) == fingerprint_of("dpo", on, ctx)
    assert fingerprint_of("dpo", config(beta=0.2), ctx) != fingerprint_of("dpo", on, ctx)
