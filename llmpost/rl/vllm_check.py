"""What a `--vllm` stage checks before anything loads: vLLM installed, a version that can serve the run, a GPU.

Cheap on purpose (no TRL, no vLLM import; torch only for the GPU check): `grpo` and `ppo` call
`check_vllm` first, so a run that cannot use vLLM stops in seconds with the fix.
"""

from __future__ import annotations


def check_vllm(cfg) -> None:
    """`vllm: true` needs vllm installed and a CUDA GPU; say so before anything loads."""
    if not cfg.vllm:
        return
    import torch

    from llmpost.errors import ConfigError

    require_vllm("--vllm")
    if cfg.qlora:
        require_vllm_bitsandbytes()
    if not torch.cuda.is_available():
        raise ConfigError(["--vllm: vLLM needs a CUDA GPU and none is visible"], hint="drop --vllm on this machine")


def require_vllm(feature: str = "--vllm") -> None:
    """Raise a ConfigError with the fix when vLLM is not installed; call before any vLLM work."""
    import importlib.util

    from llmpost.errors import ConfigError

    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            [f"{feature} needs vLLM, which is not installed in this environment"],
            hint="pip install 'llmpost[vllm]' (needs a CUDA GPU), or drop --vllm to generate with transformers",
        )


# A 4-bit base reaches vLLM as its checkpoint, which vLLM quantises with bitsandbytes as it loads
# (`rl/vllm_adapter.py`; TRL does the same for a merged 4-bit policy). vLLM 0.28 removed bitsandbytes;
# 0.27.1, the last release with it, is the one constraints.txt pins.
LAST_VLLM_WITH_BITSANDBYTES = "0.27.1"


def require_vllm_bitsandbytes() -> None:
    """Raise a ConfigError with the fix when the installed vLLM cannot load a base in 4-bit (0.28 and later)."""
    import re
    from importlib.metadata import PackageNotFoundError, version

    from llmpost.errors import ConfigError

    try:
        installed = version("vllm")
    except PackageNotFoundError:  # importable but not an installed distribution (a source tree): let vLLM say
        return
    major_minor = re.match(r"(\d+)\.(\d+)", installed)
    if major_minor and tuple(map(int, major_minor.groups())) >= (0, 28):
        raise ConfigError(
            [f"--qlora --vllm: vLLM {installed} cannot load a 4-bit base: vLLM 0.28 removed its bitsandbytes "
             "quantization"],
            hint=f"pip install -c constraints.txt 'vllm=={LAST_VLLM_WITH_BITSANDBYTES}' (the last vLLM with it), "
                 "or use --lora instead of --qlora (vLLM then gets the merged weights)",
        )
