"""Whether a stage trains under bf16 mixed precision when its config leaves `bf16` unset.

On a GPU that supports bf16, yes: the consumer cards llmpost targets all do. On a CPU, only
where bf16 matrix products run in hardware (Intel AMX, Xeon Sapphire Rapids and later):
there a [64, 576] x [576, 1536] product took 344 us in bf16 against 1561 us in fp32 (one
thread), and a forward and backward pass of SmolLM2-135M with LoRA on its top 10 layers
12-13 s against 25-29 s. Elsewhere bf16 is emulated and slower than fp32. The built-in
`tiny` model stays in fp32 everywhere: its figures are the quickstart's, measured in fp32,
and its products are too small to gain.
"""

from __future__ import annotations


def use_bf16(setting: bool | None, is_tiny: bool) -> bool:
    """The config's `bf16` where it is set, else the default below."""
    return setting if setting is not None else bf16_by_default(is_tiny)


def bf16_by_default(is_tiny: bool) -> bool:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return not is_tiny and cpu_has_bf16_matmul()


def cpu_has_bf16_matmul() -> bool:
    """True on CPUs with AMX tiles (torch's own check; private, so a torch without it counts as none)."""
    import torch

    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check and check())
