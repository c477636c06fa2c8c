"""PPO's passes over micro-batches cut to their own columns: the same numbers as whole-width passes, for less work.

On the real tiny model with a trained LoRA adapter on its top two layers (so the frozen trunk is
captured and replayed too), a rollout whose prompts and responses differ in length: the first
pass's log-probs, values, reference log-probs and captured trunk equal those of passes over the
whole padded width, an update's loss and gradients too, while the forwards see fewer columns.
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_lora_artifact

from llmpost.config.base import LoraSettings
from llmpost.rl.columns import Columns, alike, cut, own_columns, tight
from llmpost.rl.policy import response_forward, sequence_logprobs
from llmpost.rl.rollout import prompt_token_lists, rollout_from_token_lists
from llmpost.rl.settings import KLSettings, PPOSettings, RolloutSettings
from llmpost.rl.trainer import PPOTrainer

TOP_LAYERS = r".*\.layers\.[23]\..*_proj"  # tiny has 4 layers: the adapter on the top two, the bottom two frozen
QUESTIONS = ["1", "add 2 and 3", "4", "what is 10 minus 7, then times 2", "5", "6 plus 6", "7", "sum of 8 and 9 and 10"]
RESPONSE_LENGTHS = [1, 3, 2, 14, 1, 2, 5, 1]  # one long response sets the whole batch's width


def test_the_columns_kept_are_those_some_row_attends_to():
    # prompt width 4 (left-padded), response width 3 (right-padded)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0, 0],
                         [0, 1, 1, 1, 1, 1, 0],
                         [0, 0, 0, 1, 1, 0, 0]])
    assert own_columns(mask, 3) == Columns(start=1, stop=6, response=2)
    assert own_columns(mask[[0, 2]], 3) == Columns(start=2, stop=5, response=1)
    micro = {"input_ids": torch.arange(21).view(3, 7), "attention_mask": mask, "position_ids": mask,
             "response_ids": torch.arange(9).view(3, 3), "advantages": torch.ones(3, 3), "trunk": torch.zeros(3, 7, 5)}
    kept = cut(micro, Columns(1, 6, 2))
    assert kept["input_ids"][0].tolist() == [1, 2, 3, 4, 5]
    assert kept["trunk"].shape == (3, 5, 5)
    assert kept["response_ids"].tolist() == [[0, 1], [3, 4], [6, 7]] and kept["advantages"].shape == (3, 2)


def test_micro_batches_hold_rows_alike_in_length():
    prompt = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]])
    response = torch.tensor([[1, 0, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]])
    groups = alike(torch.cat([prompt, response], dim=1), 3, 2)
    assert [g.tolist() for g in groups] == [[1, 3], [0, 2]]


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from llmpost.models.load import load_tokenizer
    from llmpost.rl.policy import load_policy

    src = tiny_lora_artifact(tmp_path_factory.mktemp("adapter") / "model", LoraSettings(r=4, target_modules=TOP_LAYERS))
    torch.manual_seed(0)
    policy, reference = load_policy(src, qlora=False, lora=None)
    with torch.no_grad():  # the policy's adapter moved away from the reference's, as after some updates
        for name, param in policy.named_parameters():
            if "lora_B.default" in name:
                param.add_(0.05 * torch.randn_like(param))
    rows = [{"prompt": [{"role": "user", "content": q}]} for q in QUESTIONS]
    return PPOTrainer(policy, reference, load_tokenizer(src), lambda *a: ([1.0] * 8, {}), rows,
                      rollout=RolloutSettings(max_new_tokens=16), kl=KLSettings(),
                      ppo=PPOSettings(mini_batch_size=4), batch_size=8, steps=1)


@pytest.fixture(scope="module")
def rollout(trainer):
    from llmpost.evaluation.generation import chat_prompt

    tok = trainer.tokenizer
    texts = [chat_prompt(tok, [{"role": "user", "content": q}]) for q in QUESTIONS]
    generator = torch.Generator().manual_seed(1)
    ordinary = [i for i in range(3, 40) if i != tok.eos_token_id]  # any tokens but EOS: lengths stay as given
    completions = [[ordinary[int(j)] for j in torch.randint(len(ordinary), (n,), generator=generator)]
                   for n in RESPONSE_LENGTHS]
    return rollout_from_token_lists(prompt_token_lists(tok, texts), completions, tok)


def widths_seen(model) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    seen: list[int] = []
    embed = model.get_input_embeddings()
    return seen, embed.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1]))


def test_the_first_pass_gives_what_whole_width_passes_give_and_runs_fewer_columns(trainer, rollout):
    scores = torch.ones(8)
    assert trainer.trunk.depth == 2
    seen, hook = widths_seen(trainer.policy)
    try:
        batch, _ = trainer.experience(rollout, scores)
    finally:
        hook.remove()
    whole = rollout.input_ids.shape[1]
    # Two micro-batches of 4, each through the policy and the reference: the one with the 14-token
    # response keeps the whole width, the other only up to its longest response (5 tokens).
    assert max(seen) == whole and min(seen) <= whole - 9

    full = {"input_ids": rollout.input_ids, "attention_mask": rollout.attention_mask,
            "position_ids": rollout.position_ids, "response_ids": rollout.response_ids}
    mask = rollout.response_mask.bool()
    with torch.no_grad(), trainer.trunk.capture() as captured:
        logits, values = trainer.model(full["input_ids"], full["attention_mask"], full["position_ids"],
                                       rollout.response_ids.shape[1])
        reference = trainer.reference.logprobs(full, 1.0)
    from llmpost.rl.logprobs import token_logprobs

    torch.testing.assert_close(batch["old_logprobs"][mask], token_logprobs(logits.float(), rollout.response_ids)[mask],
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch["old_values"][mask], values.float()[mask], atol=1e-5, rtol=1e-5)
    attended = rollout.attention_mask.bool()
    torch.testing.assert_close(batch["trunk"][attended], captured.hidden[attended], atol=1e-5, rtol=1e-5)
    cut_reference = trainer.reference_pass(batch, alike(rollout.attention_mask, rollout.response_ids.shape[1], 4))
    torch.testing.assert_close(cut_reference[mask], reference[mask], atol=1e-5, rtol=1e-5)
    assert not torch.equal(reference[mask], batch["old_logprobs"][mask])  # the adapter changes the policy


def test_an_update_on_cut_columns_has_the_whole_widths_loss_and_gradients(trainer, rollout):
    batch, _ = trainer.experience(rollout, torch.ones(8))
    short = [0, 2, 4, 7]  # responses of 1-2 tokens: most of the batch's columns are padding for them
    micro = {k: v[short] for k, v in batch.items()}
    cut_micro, cols = tight(micro)
    assert cols.response == 2 and cut_micro["input_ids"].shape[1] < micro["input_ids"].shape[1] - 12

    def loss_and_grads(m):
        trainer.model.zero_grad(set_to_none=True)
        loss, _ = trainer.loss(m)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        trainer.model.zero_grad(set_to_none=True)
        return loss.detach(), grads

    loss, grads = loss_and_grads(micro)
    cut_loss, cut_grads = loss_and_grads(cut_micro)
    torch.testing.assert_close(cut_loss, loss, atol=1e-6, rtol=1e-5)
    assert grads.keys() == cut_grads.keys() and len(grads) > 0
    for name, grad in grads.items():
        scale = grad.abs().max().item()  # float32 sums in another order: agreement to 1e-4 of the largest entry
        torch.testing.assert_close(cut_grads[name], grad, atol=1e-4 * scale, rtol=1e-3, msg=lambda m, n=name: f"{n}: {m}")


def test_response_forward_reads_the_response_at_the_end_of_a_cut_sequence(trainer, rollout):
    """The cut keeps the response last: the window `response_forward` reads is still the response."""
    idx = torch.tensor([0, 4])  # one-token responses
    micro, cols = tight({"input_ids": rollout.input_ids[idx], "attention_mask": rollout.attention_mask[idx],
                         "position_ids": rollout.position_ids[idx], "response_ids": rollout.response_ids[idx]})
    assert cols.response == 1
    with torch.no_grad():
        logits, _ = response_forward(trainer.policy, micro["input_ids"], micro["attention_mask"],
                                     micro["position_ids"], 1)
        whole = sequence_logprobs(trainer.policy, {"input_ids": rollout.input_ids[idx],
                                                   "attention_mask": rollout.attention_mask[idx],
                                                   "position_ids": rollout.position_ids[idx],
                                                   "response_ids": rollout.response_ids[idx]}, 1.0)
    from llmpost.rl.logprobs import token_logprobs

    torch.testing.assert_close(token_logprobs(logits.float(), micro["response_ids"])[:, 0], whole[:, 0],
                               atol=1e-5, rtol=1e-5)
