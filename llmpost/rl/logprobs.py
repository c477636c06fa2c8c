"""Log-probabilities and entropies of sampled tokens from the LM head's logits, a few positions at a time.

PPO reads, at every response position, log pi(token) and the entropy of the next-token
distribution, both at the sampling temperature and in float32. Computed the plain way (`logits.float()
/ t`, `log_softmax`, `softmax`), each step makes a `[B, R, V]` float32 copy that autograd keeps or that
briefly doubles the logits: for Llama-3.1-8B's 128,256-token vocabulary, 16 responses of 128 tokens are
1 GiB per copy, and the update held several at once. Here the only `[B, R, V]` tensors are the model's
logits (kept for the backward pass, in the model's dtype) and their gradient; every float32 step runs
on `CHUNK_BYTES` of positions at a time, and the backward pass recomputes the softmax from the logits
and each position's log-sum-exp:

    log p_k = z_k - logsumexp(z)          d log p_k / d z_j = [j = k] - p_j
    H = -sum_j p_j log p_j                d H / d z_j = -p_j (log p_j + H)

with z the logits over the temperature (their gradient is the above over the temperature).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

# Float32 working memory per step: 64 MiB, about 130 positions of a 128K-token vocabulary.
CHUNK_BYTES = 64 * 2**20


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(token) at each position under softmax(logits / temperature): `[B, T, V]`, `[B, T]` -> `[B, T]` float32."""
    return logprobs_and_entropy(logits, tokens, temperature)[0]


def logprobs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0, *,
                         entropy: bool = False, chunk_bytes: int = CHUNK_BYTES):
    """(log pi(token) `[B, T]`, the entropy of each position's distribution `[B, T]` or None), float32 (float64 for
    float64 logits), both differentiable, at `temperature`."""
    return _TokenStats.apply(logits, tokens, 1.0 / temperature, entropy, chunk_bytes)


def chunks(logits: torch.Tensor, chunk_bytes: int) -> Iterator[tuple[int, slice]]:
    """(row, positions) blocks of `logits` `[B, T, V]` whose float32 copy fits `chunk_bytes`."""
    rows, positions, vocab = logits.shape
    step = max(1, chunk_bytes // (vocab * 4))
    for row in range(rows):
        for start in range(0, positions, step):
            yield row, slice(start, min(start + step, positions))


def working(block: torch.Tensor, inv_t: float) -> torch.Tensor:
    """A new copy of a block of logits in the working precision (float32, or float64 for float64 logits), over the
    temperature: the steps below work on it in place."""
    return block.to(torch.promote_types(block.dtype, torch.float32), copy=True).mul_(inv_t)


class _TokenStats(torch.autograd.Function):
    """Float32 blocks of `chunk_bytes` live at a time: two in the forward (three with the entropy: its
    probabilities and their product with log p), two in the backward."""

    @staticmethod
    def forward(ctx, logits, tokens, inv_t, with_entropy, chunk_bytes):
        dtype = torch.promote_types(logits.dtype, torch.float32)
        logprobs = torch.empty(logits.shape[:2], dtype=dtype, device=logits.device)
        lse = torch.empty_like(logprobs)
        ent = torch.empty_like(logprobs) if with_entropy else None
        for row, pos in chunks(logits, chunk_bytes):
            z = working(logits[row, pos], inv_t)
            lse[row, pos] = torch.logsumexp(z, dim=-1)
            z.sub_(lse[row, pos, None])  # log p
            logprobs[row, pos] = z.gather(-1, tokens[row, pos, None]).squeeze(-1)
            if with_entropy:
                ent[row, pos] = -(z.exp() * z).sum(-1)
        ctx.save_for_backward(logits, tokens, lse, ent)
        ctx.inv_t, ctx.chunk_bytes = inv_t, chunk_bytes
        return logprobs, ent

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        logits, tokens, lse, ent = ctx.saved_tensors
        grad = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
        for row, pos in chunks(logits, ctx.chunk_bytes):
            log_p = working(logits[row, pos], ctx.inv_t).sub_(lse[row, pos, None])
            p = log_p.exp()
            g_lp = grad_logprobs[row, pos, None]
            if ent is not None and grad_entropy is not None:  # -p (log p + H) g_H, built in log_p's place
                entropy_term = log_p.add_(ent[row, pos, None]).mul_(p).mul_(grad_entropy[row, pos, None])
                g = p.mul_(g_lp).add_(entropy_term).neg_()
            else:
                g = p.mul_(g_lp).neg_()
            g.scatter_add_(-1, tokens[row, pos, None], g_lp)
            grad[row, pos] = g.mul_(ctx.inv_t)
        return grad, None, None, None, None
