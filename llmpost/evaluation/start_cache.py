"""A KV cache of the start every row shares, which a scoring pass reads and never grows.

A scoring pass (a reward model's) reads its outputs, never its cache. Through a growing cache,
every layer's keys and values of the whole batch would stay in memory until the pass ends: a
reward model of Llama-3.1-8B's shape would hold 4 GiB for 32 sequences of 1K tokens, more than
the pass's own activations, where a pass without a cache frees each layer's once its attention
is done. This cache hands each layer's attention the shared start followed by the new keys and
values, and keeps only the start.

Imported when a batch with a shared start is scored: it imports torch and transformers.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class StartLayer(DynamicLayer):
    """One layer's keys and values of the shared start; an update returns them with the new ones, and keeps these."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


def start_only(cache: Cache) -> Cache:
    """The keys and values `cache` holds (plain key/value layers: `rows.copyable`) in a cache that never grows."""
    return Cache(layers=[StartLayer(layer.keys, layer.values) for layer in cache.layers])
