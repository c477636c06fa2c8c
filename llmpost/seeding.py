"""Seeding python, numpy and torch for a reproducible run, without importing transformers.

`transformers.set_seed` does the same, but reaching it imports `transformers.trainer_utils`,
which imports peft and, through it, bitsandbytes (which compiles kernels with torch.compile
at import): about 3.5 s of a 2-core CPU. Commands that only load a model and generate
(eval, generate, score, judge, compare) need none of them.
"""

from __future__ import annotations


def set_seed(seed: int) -> None:
    """Seed python's `random`, numpy and torch on every device, as `transformers.set_seed` does."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device: torch seeds CUDA (and other accelerators) from here too
