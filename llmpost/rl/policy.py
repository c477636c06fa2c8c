"""The policy and its reference: one base model, used two ways.

How the reference is kept, by what the input policy is (the issue of memory):

- a full model, trained with `--lora`/`--qlora`: the policy is a new LoRA adapter
  on the base (4-bit under QLoRA) and the reference is the same base with the
  adapter disabled. One copy of the weights.
- already a LoRA artifact (e.g. `sft --lora`): the policy must start from, and be
  held near, that adapter. Its adapter is loaded twice on the one base: `default`
  (trainable, becomes the output) and `reference` (frozen); the reference pass
  switches the active adapter. Merging the input adapter into the base instead
  would make the saved adapter unusable on the real base, and cannot be done
  losslessly on a 4-bit base.
- a full model trained in full (the tiny default, no LoRA): the reference is a
  frozen copy. That doubles the weights, which is nothing for `tiny` (0.9M
  parameters); for real models use `--lora` or `--qlora`.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from inspect import signature

import torch

from llmpost.rl.logprobs import token_logprobs

REFERENCE_ADAPTER = "reference"


def causal_lm(model):
    """The transformers model under a peft wrapper (LoRA layers live inside it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def response_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                     response_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, hidden) at the positions that predict each response token: `[B, R, V]`, `[B, R, H]`.

    Runs the model's own forward, so the logits are exactly the model's: whatever
    it does after the LM head (Gemma's soft-capping, Cohere's `logit_scale`,
    Granite's `logits_scaling`, ...) is applied, and PPO's log-probs match it.
    `logits_to_keep`, given those positions (position t-1 predicts token t), limits
    the head to them, so long prompts and big vocabularies cost no extra logits,
    and the logits are a tensor of their own: a slice of a larger one would give
    the backward pass a gradient of the larger one's size. A model whose forward
    lacks it, or keeps every position, computes all logits, sliced here. `hidden` is
    the input of the output-embedding module -- the trunk's final (normalised)
    state the head reads, what the value head reads; it keeps its gradient.
    """
    lm = causal_lm(model)
    length = input_ids.shape[1]
    window = slice(length - response_length - 1, length - 1)  # the last position predicts past the end
    captured = []
    hook = lm.get_output_embeddings().register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    keep = ({"logits_to_keep": torch.arange(window.start, window.stop, device=input_ids.device)}
            if "logits_to_keep" in signature(lm.forward).parameters else {})
    try:
        logits = lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                    use_cache=False, **keep).logits
    finally:
        hook.remove()
    hidden = captured[-1]
    if logits.shape[1] != response_length:
        logits, hidden = logits[:, window], hidden[:, window]
    return logits, hidden


def sequence_logprobs(model, batch: dict, temperature: float) -> torch.Tensor:
    """log pi(response token) under `model` for a batch of rollout tensors, `[B, R]`."""
    logits, _ = response_forward(model, batch["input_ids"], batch["attention_mask"], batch["position_ids"],
                                 batch["response_ids"].shape[1])
    return token_logprobs(logits, batch["response_ids"], temperature)


class Reference:
    """The frozen reference policy: log-probs of sampled responses, never trained."""

    def __init__(self, kind: str, model, adapter: str | None = None):
        self.kind = kind  # "adapter-disabled", "reference-adapter" or "frozen-copy"
        self.model = model
        self.adapter = adapter

    @torch.no_grad()
    def logprobs(self, batch: dict, temperature: float) -> torch.Tensor:
        with self.active():
            return sequence_logprobs(self.model, batch, temperature)

    @contextmanager
    def active(self):
        """Make `self.model` compute the reference policy for the duration."""
        if self.kind == "adapter-disabled":
            with self.model.disable_adapter():
                yield
        elif self.kind == "reference-adapter":
            policy_adapter = self.model.active_adapter
            self.model.set_adapter(self.adapter, inference_mode=True)
            try:
                yield
            finally:
                self.model.set_adapter(policy_adapter)  # makes the policy's adapter trainable again
        else:
            yield


def load_policy(src, *, qlora: bool, lora, trust_remote_code: bool = False,
                gradient_checkpointing: bool = False):
    """(policy causal LM, Reference) for model source `src`; see the module docstring for the cases.

    `lora` is the LoraSettings for a new adapter, or None to train all weights.
    """
    from llmpost.models.load import add_lora, load_model

    model = load_model(src, qlora=qlora, trainable_adapter=bool(src.adapter_path),
                       trust_remote_code=trust_remote_code)
    if src.adapter_path:
        model.load_adapter(src.adapter_path, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
        model.set_adapter("default")
        reference = Reference("reference-adapter", model, REFERENCE_ADAPTER)
    elif lora is not None or qlora:
        model = add_lora(model, lora, qlora=qlora)
        reference = Reference("adapter-disabled", model)
    else:
        frozen = copy.deepcopy(model).eval().requires_grad_(False)
        reference = Reference("frozen-copy", frozen)
    if gradient_checkpointing:
        causal_lm(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    disable_dropout(model)
    return model, reference


def disable_dropout(model) -> None:
    """Dropout off everywhere: on PPO's first pass the new/old probability ratio must be exactly 1."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def save_policy(model, tokenizer, out, src) -> None:
    """Save the trained policy alone (never the reference adapter) as a loadable model or adapter."""
    from llmpost.models.save import save_model

    if REFERENCE_ADAPTER in getattr(model, "peft_config", {}):
        model.delete_adapter(REFERENCE_ADAPTER)
    save_model(model, tokenizer, out, src)
