"""Rows of token ids as one forward pass: padded to one tensor, with the work every row would repeat done once.

Generation (`generation.py`: eval, GRPO's and PPO's sampling) and a reward model's scoring
(`rewards/reward_model.py`) both run a batch of rows that start alike: a chat template puts
its system prompt before every conversation. That start runs once, for one row.
"""

from __future__ import annotations


def pad_rows(rows: list[list[int]], pad_token_id: int, *, left: bool, multiple_of: int | None = None):
    """Token lists of different lengths as one `[B, longest]` tensor (on the CPU) and its mask of real tokens.

    Prompts go on the left (a decoder-only model continues from the right edge), completions and whole
    sequences a scorer reads on the right. `multiple_of` rounds the width up to a multiple of it."""
    import torch

    width = max((len(row) for row in rows), default=0)
    if multiple_of:
        width = -(-width // multiple_of) * multiple_of
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, cols] = torch.tensor(list(row), dtype=torch.long)
        mask[i, cols] = 1
    return ids, mask


# A start shared by every prompt is computed once, then copied to every row, when it is at least this long:
# below it, the extra forward call costs about what it saves.
MIN_SHARED_START = 8


def forward_distinct(model, rows: list[tuple[int, ...]], cache, pad_token_id: int, *, keep: bool = True, **kwargs):
    """One forward pass of distinct `rows` into `cache`, a start they all share computed once: (its logits, the mask).

    A start that all rows share (a chat template's default system prompt: SmolLM2's is 24 of
    the built-in task's 47-55 prompt tokens) of at least MIN_SHARED_START tokens runs for one
    row, its cache is copied to every row, and the rest of each row follows it, left-padded:
    the padding sits between the shared start and the rest, masked, and positions come from
    the mask. Each row's last token is its own, so its last logits are; so is the rightmost
    token that is not padding, where a sequence classifier reads its score (a row may end in
    its pad token: an end of sequence that doubles as padding).

    `keep`: the cache ends up holding every row (decoding goes on from it); False (scoring): it
    holds the shared start only, and the pass's own keys and values are dropped layer by layer
    (`start_cache.py`), as in a pass without a cache.
    """
    import torch

    device = model.device
    shared = shared_start(rows) if len(rows) > 1 and copyable(cache) else 0
    shared = min(shared, *(last_not(pad_token_id, row) for row in rows))
    shared = shared if shared >= MIN_SHARED_START else 0
    if shared:
        model(input_ids=torch.tensor([rows[0][:shared]], device=device), past_key_values=cache, use_cache=True,
              **kwargs)
        cache.batch_repeat_interleave(len(rows))
    if not keep:
        from llmpost.evaluation.start_cache import start_only

        cache = start_only(cache) if shared else None
    rest, rest_mask = pad_rows([row[shared:] for row in rows], pad_token_id, left=True)
    mask = torch.cat([rest_mask.new_ones(len(rows), shared), rest_mask], dim=1).to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
    logits = model(input_ids=rest.to(device), attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=cache is not None, **kwargs).logits
    return logits, mask


def shared_start(rows: list[tuple[int, ...]]) -> int:
    """How many first tokens all `rows` share, leaving each at least one of its own (its last logits come from it)."""
    most = min(len(row) for row in rows) - 1
    first = rows[0]
    for i in range(most):
        if any(row[i] != first[i] for row in rows):
            return i
    return max(most, 0)


def last_not(token: int, row: tuple[int, ...]) -> int:
    """The index of `row`'s last token other than `token` (0 if none)."""
    return next((i for i in range(len(row) - 1, -1, -1) if row[i] != token), 0)


def copyable(cache) -> bool:
    """Whether `cache`'s rows may be copied and padded in the middle: plain key/value layers only.

    A recurrent state would read the padding, and a sliding window counts cache slots, not
    positions: padding between the shared start and the rest would take the place of tokens in
    its window (a toy Qwen2 with a 6-token window answered otherwise than `generate`).
    """
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in cache.layers)
