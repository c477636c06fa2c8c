"""A micro-batch cut to its own columns: PPO's passes skip the padding that every row of it has.

A step's rollout is one tensor for all its responses: each prompt left-padded to the longest
prompt, each response right-padded to the longest response. Most rows are far shorter (in the
real-model recipe responses average 11 tokens of the 64 allowed, and the longest of 64 sets the
width), and a forward pays for every column, the LM head for every response column. So each pass
over a micro-batch first drops the columns no row of it attends to: the prompt columns left of
its longest prompt and the response columns right of its longest response. Nothing else changes:
positions are explicit, the dropped columns were masked everywhere, and the response still ends
the sequence, where `response_forward` reads it.

The first pass (`experience`) also groups rows of similar response length into its micro-batches,
then puts each result back at its row's place; the updates keep their shuffled minibatches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Tensors laid out like the whole sequence, [rows, prompt + response, ...]; every other tensor of
# a PPO batch with a second dimension is laid out like the response, [rows, response, ...].
SEQUENCE_KEYS = ("input_ids", "attention_mask", "position_ids", "trunk")


@dataclass(frozen=True)
class Columns:
    """The columns of a batch that a micro-batch keeps: sequence columns [start, stop), response columns [0, response)."""

    start: int
    stop: int
    response: int


def own_columns(attention_mask: torch.Tensor, response_width: int) -> Columns:
    """The columns some row of `attention_mask` ([rows, prompt + response]) attends to.

    Every response holds at least one token (`rollout.py`), so at least one response column is kept.
    """
    prompt_width = attention_mask.shape[1] - response_width
    attended = attention_mask.bool().any(dim=0)
    prompt_attended = attended[:prompt_width].nonzero()
    start = int(prompt_attended[0]) if len(prompt_attended) else prompt_width
    response = max(1, int(attention_mask[:, prompt_width:].sum(dim=1).max()))
    return Columns(start, prompt_width + response, response)


def cut(micro: dict, columns: Columns) -> dict:
    """`micro` with only `columns`: sequence-shaped tensors on [start, stop), response-shaped ones on [0, response)."""
    out = {}
    for key, value in micro.items():
        if key in SEQUENCE_KEYS:
            out[key] = value[:, columns.start:columns.stop]
        elif isinstance(value, torch.Tensor) and value.dim() >= 2:
            out[key] = value[:, :columns.response]
        else:
            out[key] = value
    return out


def tight(micro: dict) -> tuple[dict, Columns]:
    """`micro` cut to its own columns, and which columns those are."""
    columns = own_columns(micro["attention_mask"], micro["response_ids"].shape[1])
    return cut(micro, columns), columns


def alike(attention_mask: torch.Tensor, response_width: int, size: int) -> list[torch.Tensor]:
    """Row indices in micro-batches of `size`, rows of similar length together: by response length, then
    prompt length, longest first (the response sets the LM head's columns too)."""
    prompt_width = attention_mask.shape[1] - response_width
    prompt = attention_mask[:, :prompt_width].sum(dim=1)
    response = attention_mask[:, prompt_width:].sum(dim=1)
    key = response * (prompt_width + 1) + prompt
    return list(torch.argsort(key, descending=True, stable=True).split(size))
