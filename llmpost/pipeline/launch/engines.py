"""The engines llmpost runs on rather than reimplements: DeepSpeed ZeRO and PyTorch FSDP.

DeepSpeed and FSDP reach the trainer as transformers `TrainingArguments`
(`trainer.deepspeed`, `trainer.fsdp`), so they work the same under torchrun and
`accelerate launch`, and the resolved config (hence the manifest) records them.
(vLLM, the third engine, is checked where it is used: `rl/vllm_check.check_vllm`.)
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from llmpost.errors import ConfigError

# DeepSpeed configs in the shape the transformers integration expects: "auto" values
# are filled from the TrainingArguments (batch size, accumulation, precision, clipping).
_COMMON: dict[str, Any] = {
    "bf16": {"enabled": "auto"},
    "fp16": {"enabled": "auto"},
    "train_micro_batch_size_per_gpu": "auto",
    "train_batch_size": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
}
DEEPSPEED_PRESETS: dict[str, dict[str, Any]] = {
    "zero2": {**_COMMON, "zero_optimization": {
        "stage": 2, "overlap_comm": True, "contiguous_gradients": True,
        "reduce_bucket_size": "auto", "allgather_bucket_size": 2e8,
    }},
    "zero3": {**_COMMON, "zero_optimization": {
        "stage": 3, "overlap_comm": True, "contiguous_gradients": True,
        "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto", "sub_group_size": 1e9,
        # Gather the full weights when saving, so the artifact is an ordinary HF model.
        "stage3_gather_16bit_weights_on_model_save": True,
    }},
}
# FSDP2, full sharding, one wrap per transformer block (transformers reads the block class from the model).
FSDP_CONFIG: dict[str, Any] = {"version": 2, "reshard_after_forward": True, "state_dict_type": "FULL_STATE_DICT"}


def is_importable(module: str) -> bool:
    """True when `module` can be imported here (without importing it)."""
    return importlib.util.find_spec(module) is not None


def require_deepspeed() -> None:
    """Raise a ConfigError with the fix when DeepSpeed is not installed."""
    if not is_importable("deepspeed"):
        raise ConfigError(["--deepspeed needs DeepSpeed, which is not installed in this environment"],
                          hint="pip install deepspeed (needs CUDA GPUs), or use --fsdp, or plain DDP without either")


def require_cuda(what: str) -> None:
    """DeepSpeed and FSDP shard across GPUs; on a CPU-only machine say so up front."""
    import torch

    if not torch.cuda.is_available():
        raise ConfigError([f"{what} needs CUDA GPUs and none is visible here"],
                          hint="on CPU, run plain DDP: --launcher torchrun --num-processes N without " + what)


def deepspeed_config(spec: str) -> dict[str, Any]:
    """The DeepSpeed config for `zero2`, `zero3`, or a JSON/YAML file, as a dict."""
    if spec in DEEPSPEED_PRESETS:
        return json.loads(json.dumps(DEEPSPEED_PRESETS[spec]))  # a copy callers may change
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError([f"--deepspeed {spec!r}: not 'zero2', 'zero3' or an existing file"],
                          hint="use --deepspeed zero2, --deepspeed zero3, or the path of a DeepSpeed JSON config")
    import yaml

    try:  # JSON is YAML, so one reader takes both
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([f"--deepspeed {spec}: cannot parse it: {exc}"], hint="fix the file's syntax") from None
    if not isinstance(loaded, dict):
        raise ConfigError([f"--deepspeed {spec}: expected a mapping of DeepSpeed settings"])
    return loaded


def trainer_overrides(settings) -> dict[str, Any]:
    """The `trainer:` keys that switch the stage's transformers Trainer onto DeepSpeed or FSDP."""
    if settings.deepspeed:
        return {"deepspeed": deepspeed_config(settings.deepspeed)}
    if settings.fsdp:
        return {"fsdp": True, "fsdp_config": dict(FSDP_CONFIG)}
    return {}


def check_engines(settings) -> None:
    """Fail before launching when the requested engine cannot run here."""
    if settings.deepspeed:
        deepspeed_config(settings.deepspeed)  # a bad preset name / file is the first thing to fix
        require_deepspeed()
        require_cuda("--deepspeed")
    if settings.fsdp:
        require_cuda("--fsdp")
