"""vLLM sampling for a LoRA policy on a 4-bit base: each sync sends vLLM the adapter alone.

TRL's `VLLMGeneration` syncs a PEFT policy by merging its adapter into the base and
pushing every weight. A 4-bit base cannot take that: peft merges into NF4 weights by
dequantising and requantising every layer (the small update is mostly rounded away),
and the packed 4-bit tensors it then pushes are not weights vLLM can load (trl#4973,
trl#3654). Here vLLM loads the base from its own checkpoint, quantised in flight with
bitsandbytes as the policy's base was, with LoRA enabled; each sync writes the policy's
adapter to a new directory, and the generations after it name that directory in a new
`LoRARequest`, so vLLM loads it in place of the last one. The base is never touched,
and a sync moves the adapter's megabytes, not the model's gigabytes.

vLLM 0.22-0.27 only: vLLM 0.28 removed bitsandbytes (`vllm_check.require_vllm_bitsandbytes` says
so before anything loads; constraints.txt pins 0.27.1). Colocate mode only: `trl vllm-serve` takes
no adapters. The stages' configs refuse `--qlora` with `vllm_mode: server` or vLLM's sleep mode
before anything loads (`config/base.py:qlora_vllm_problems`); the engine refuses them too, for
callers from Python.

TRL is imported at the top: this module is imported only when vLLM rollouts are built.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from contextlib import contextmanager
from pathlib import Path

from trl.generation.vllm_generation import VLLMGeneration
from trl.trainer.utils import ensure_master_addr_port

from llmpost.errors import ConfigError
from llmpost.rl.vllm_check import require_vllm_bitsandbytes

# The adapter ranks vLLM's LoRA support is built for (`max_lora_rank` takes one of them).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def syncs_adapter_only(model) -> bool:
    """Whether vLLM must get `model`'s adapter alone: a PEFT model on a 4-bit (bitsandbytes) base."""
    from llmpost.models.load import count_4bit_layers

    return hasattr(model, "peft_config") and count_4bit_layers(model) > 0


def vllm_generation(model, *args, **kwargs) -> VLLMGeneration:
    """TRL's `VLLMGeneration(model, ...)`, or `AdapterVLLMGeneration` for a LoRA policy on a 4-bit base."""
    engine = AdapterVLLMGeneration if syncs_adapter_only(model) else VLLMGeneration
    return engine(model, *args, **kwargs)


@contextmanager
def vllm_generation_in(module):
    """Within the block, `module`'s `VLLMGeneration` (the name TRL's trainers build their engine with) is
    `vllm_generation`: a TRL trainer built inside it syncs a 4-bit base's adapter alone."""
    original = module.VLLMGeneration
    module.VLLMGeneration = vllm_generation
    try:
        yield
    finally:
        module.VLLMGeneration = original


def max_lora_rank(rank: int) -> int:
    """The smallest rank vLLM supports that holds an adapter of rank `rank`."""
    fitting = [r for r in VLLM_LORA_RANKS if r >= rank]
    if not fitting:
        raise ConfigError([f"lora.r={rank}: vLLM serves LoRA adapters of rank {VLLM_LORA_RANKS[-1]} at most"],
                          hint=f"set lora.r to {VLLM_LORA_RANKS[-1]} or less, or drop --vllm")
    return fitting[0]


class WithAdapter:
    """vLLM's `LLM`, whose `generate` names the adapter of the last sync; everything else is the LLM's own."""

    def __init__(self, llm):
        self.llm = llm
        self.request = None  # the LoRARequest of the last sync

    def generate(self, *args, **kwargs):
        if self.request is None:
            raise RuntimeError("vLLM generate before the first adapter sync: it would sample from the bare base")
        return self.llm.generate(*args, lora_request=self.request, **kwargs)

    def __getattr__(self, name):
        return getattr(self.llm, name)


class AdapterVLLMGeneration(VLLMGeneration):
    """`VLLMGeneration` (colocate mode) that syncs a PEFT policy's active adapter to vLLM as a LoRA, base untouched."""

    def __init__(self, model, *args, **kwargs):
        self.snapshots = Path(tempfile.mkdtemp(prefix="llmpost-vllm-adapter-"))
        weakref.finalize(self, shutil.rmtree, self.snapshots, ignore_errors=True)
        self.syncs = 0
        super().__init__(model, *args, **kwargs)

    def _init_vllm(self):
        """TRL's colocated engine (one process per GPU, as llmpost runs it), with LoRA on and the base in 4-bit."""
        if self.mode != "colocate":
            raise ConfigError([f"vllm_mode={self.mode}: a 4-bit base syncs its LoRA adapter to a colocated vLLM "
                               "only; `trl vllm-serve` takes no adapters"], hint="set vllm_mode=colocate")
        if self.enable_sleep_mode:  # sleep level 2 drops vLLM's base weights, and no sync sends them back
            raise ConfigError(["vllm_enable_sleep_mode: vLLM would drop its 4-bit base while asleep, and the "
                               "adapter syncs do not send the base"], hint="leave vllm_enable_sleep_mode off")
        require_vllm_bitsandbytes()
        from vllm import LLM

        accelerator = self.accelerator
        # vLLM's external launcher reads the distributed setup from the environment, as in TRL.
        os.environ["RANK"] = str(accelerator.process_index)
        os.environ["LOCAL_RANK"] = str(accelerator.local_process_index)
        os.environ["WORLD_SIZE"] = str(accelerator.num_processes)
        ensure_master_addr_port()
        adapter = self.model.peft_config[self.model.active_adapter]
        llm = LLM(
            model=self.model.name_or_path,  # the base's checkpoint: vLLM quantises it itself
            quantization="bitsandbytes",
            enable_lora=True, max_loras=1, max_lora_rank=max_lora_rank(adapter.r),
            gpu_memory_utilization=self.gpu_memory_utilization, max_model_len=self.max_model_length,
            max_num_seqs=self.max_num_seqs, model_impl=self.model_impl,
            distributed_executor_backend="external_launcher", seed=accelerator.process_index,
            # TRL's settings: its memory profiler misreads the default; logprobs after temperature, for TRL's
            # importance-sampling correction
            max_num_batched_tokens=4096, logprobs_mode="processed_logprobs",
            trust_remote_code=self.trust_remote_code,
        )
        self.llm = WithAdapter(llm)
        accelerator.wait_for_everyone()

    def sync_weights(self):
        """Write the policy's adapter to a new directory and name it in the next generations' LoRARequest."""
        from vllm.lora.request import LoRARequest

        self.syncs += 1
        path = self.snapshots / f"sync-{self.syncs}"
        self.model.save_pretrained(path, selected_adapters=[self.model.active_adapter])
        # a new id: vLLM caches adapters by id, so a reused one would keep serving the old weights
        self.llm.request = LoRARequest(f"policy-{self.syncs}", self.syncs, str(path))
        self.llm.reset_prefix_cache()  # cached blocks of the last adapter are never read again
        # vLLM has read the last sync's directory, or never will: no request names it any more
        shutil.rmtree(self.snapshots / f"sync-{self.syncs - 1}", ignore_errors=True)
