"""The frozen trunk: the bottom decoder layers no update changes, computed once per batch.

When a stage trains a LoRA adapter on the top layers only (the real-model recipe puts
it on layers 20-29 of SmolLM2's 30), the layers below the lowest adapter are frozen
and carry no adapter: the model and its reference (the same base with the adapter off
or switched) compute the same hidden states there for the same tokens. So the first
forward over a batch keeps what the frozen layers output and the others replay it:

    PPO   a step runs three forwards over its rollout -- the policy's old log-probs and
          values, the reference's log-probs, the update (`rl/trainer.py`)
    DPO   each batch of [chosen; rejected] runs the policy, then the reference
          (`stages/dpo_trainer.py`)

Replay keeps the model's own forward: for its duration the frozen layers' `forward`
is swapped for one that returns the captured output of the topmost frozen layer, so
the layers above, the final norm, the head and any output scaling run as the model
defines them, and the gradient stops where it stopped anyway. The first replay is
checked against the full forward it stands in for: a model that does not feed its
decoder layers one into the next (remote code, an unusual family) fails the check
and keeps the full forward.

Memory: the captured states of one step's rollout, `[batch_size, tokens, hidden]`
in the model's dtype, live until the step ends.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Captured:
    hidden: torch.Tensor | None = None  # what the topmost frozen layer returned; None: nothing to replay


class FrozenTrunk:
    """Captures and replays the output of a causal LM's frozen bottom `depth` decoder layers."""

    def __init__(self, layers: nn.ModuleList | None, depth: int):
        self.layers, self.depth = layers, depth
        self.verified = depth == 0  # nothing to check when nothing is replayed

    @classmethod
    def of(cls, lm: nn.Module) -> FrozenTrunk:
        """The frozen trunk of causal LM `lm` (the transformers model, under any peft wrapper); depth 0: none."""
        layers = decoder_layers(lm)
        return cls(layers, frozen_depth(layers) if layers is not None else 0)

    @property
    def enabled(self) -> bool:
        return self.depth > 0

    @contextmanager
    def capture(self) -> Iterator[Captured]:
        """Record, during a full forward, what the topmost frozen layer outputs (a tensor, or nothing kept)."""
        captured = Captured()
        if not self.enabled:
            yield captured
            return

        def keep(_module, _args, output):
            captured.hidden = output.detach() if isinstance(output, torch.Tensor) else None

        hook = self.layers[self.depth - 1].register_forward_hook(keep)
        try:
            yield captured
        finally:
            hook.remove()

    @contextmanager
    def replay(self, hidden: torch.Tensor | None) -> Iterator[None]:
        """Forwards in this block skip the frozen layers: each returns `hidden` (a no-op for None)."""
        if hidden is None or not self.enabled:
            yield
            return
        frozen = list(self.layers[: self.depth])
        own = [layer.__dict__.get("forward") for layer in frozen]  # a hook library's wrapper, kept
        for layer in frozen:
            layer.forward = lambda *args, **kwargs: hidden
        try:
            yield
        finally:
            for layer, forward in zip(frozen, own, strict=True):
                if forward is None:
                    del layer.forward
                else:
                    layer.forward = forward

    @contextmanager
    def computed_once(self) -> Iterator[None]:
        """In this block the first forward computes the frozen layers; the later ones replay their output.

        For a loss that runs two forwards over the same batch, such as DPO's policy and then its reference.
        """
        if not self.enabled:
            yield
            return
        with ExitStack() as stack:
            def replay_from_now(_module, _args, output):
                hook.remove()
                if isinstance(output, torch.Tensor):
                    stack.enter_context(self.replay(output.detach()))

            hook = self.layers[self.depth - 1].register_forward_hook(replay_from_now)
            stack.callback(hook.remove)
            yield

    def verify(self, full: torch.Tensor, replayed: torch.Tensor) -> None:
        """Keep replaying only if `replayed` (logits under replay) equals `full` (the full forward's)."""
        self.verified = True
        if not torch.allclose(full.float(), replayed.float(), rtol=1e-3, atol=1e-3):
            warnings.warn(f"replaying the {self.depth} frozen decoder layers does not reproduce this model's "
                          "forward; they are computed in full (slower, same result)", stacklevel=2)
            self.depth = 0


def decoder_layers(lm: nn.Module) -> nn.ModuleList | None:
    """The stack of decoder layers of a transformers causal LM (`model.layers` and kin); None when not found."""
    try:
        decoder = lm.get_decoder()
        count = lm.config.get_text_config().num_hidden_layers
    except (AttributeError, NotImplementedError, ValueError):
        return None
    layers = getattr(decoder, "layers", None)
    return layers if isinstance(layers, nn.ModuleList) and len(layers) == count else None


def frozen_depth(layers: nn.ModuleList) -> int:
    """How many layers, from the bottom, hold no trainable weight and no adapter (of any name, active or not)."""
    depth = 0
    for layer in layers:
        if any(p.requires_grad for p in layer.parameters()) or has_adapter(layer):
            break
        depth += 1
    return depth


def has_adapter(module: nn.Module) -> bool:
    """Whether a peft tuner layer (LoRA and kin) sits inside `module`: switching adapters changes its output."""
    return any(type(m).__module__.startswith("peft.") for m in module.modules())
