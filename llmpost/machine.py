"""The machine a stage ran on, in one line, for its manifest, the run report and `llmpost doctor`.

A wall time means little without it: the real-model recipe's DPO took 6.7 s a step on one 2-core
AMD EPYC virtual machine and 11.5 s on another, while generating SmolLM2's answers took
about the same time on both (4m44s, 4m29s). So the line names the CPU and the
vector instructions torch's kernels use there.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def device_description() -> str:
    """`cuda x1 (NVIDIA H100 80GB HBM3)`, `mps`, or `cpu (AMD EPYC, x86_64, 2 cores, AVX2)`."""
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        names = sorted({torch.cuda.get_device_name(i) for i in range(n)})
        return f"cuda x{n} ({', '.join(names)})"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    parts = [cpu_name(), platform.machine(), f"{os.cpu_count()} cores", vector_instructions()]
    return f"cpu ({', '.join(part for part in parts if part)})"


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name (`AMD EPYC`, `Intel(R) Xeon(R) Platinum 8480+`), or '' where unknown."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    name = platform.processor()
    return "" if name in ("", platform.machine()) else name


def vector_instructions() -> str:
    """What torch's CPU kernels use here: `AVX512`, `AVX2`, `SVE256`, `DEFAULT`... ('' on an old torch)."""
    import torch

    capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
    return capability() if capability is not None else ""
