"""A stand-in for the parts of vLLM that llmpost's adapter sync calls, built from transformers and peft.

vLLM cannot run here: its wheels are CUDA builds, with several GB of CUDA libraries. The stand-in
does what vLLM does with the calls under test, with the libraries a user's checkpoint and adapter
must also load with: `LLM(model=PATH, quantization="bitsandbytes", enable_lora=True)` loads the
base from its checkpoint (4-bit NF4 under "bitsandbytes"), and `generate(..., lora_request=
LoRARequest(name, id, path))` reads the adapter from `path` the first time it sees `id`, as vLLM
caches adapters by id, in the dtype it was saved in (TRL keeps a 4-bit base's adapter in bf16; peft
would otherwise compute it in fp32 and the policy in bf16). It decodes greedily whatever the
sampling settings: the tests compare which weights answered, not draws.

`install(monkeypatch)` puts it in `sys.modules` as `vllm` and `vllm.lora.request`, and gives TRL's
`vllm_generation` module the `SamplingParams` it imports only when vLLM is installed.
"""

from __future__ import annotations

import math
import os
import sys
import types
from dataclasses import dataclass

import torch


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.max_tokens = kwargs.get("max_tokens", 16)
        self.stop_token_ids = kwargs.get("stop_token_ids") or []


@dataclass
class Logprob:
    logprob: float
    rank: int = 1


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]]


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[Completion]


class LLM:
    built: list[LLM] = []  # every engine built since `install`

    def __init__(self, model: str, quantization: str | None = None, enable_lora: bool = False, **options):
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        self.model, self.quantization, self.enable_lora, self.options = model, quantization, enable_lora, options
        quant = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype=torch.float32)
                 if quantization == "bitsandbytes" else None)
        self.base = AutoModelForCausalLM.from_pretrained(model, quantization_config=quant, device_map={"": "cpu"})
        self.served = None  # the PeftModel holding every adapter read so far
        self.adapters_read: list[str] = []  # the paths read, in order
        self.prefix_cache_resets = 0
        LLM.built.append(self)

    def generate(self, prompts, sampling_params, use_tqdm=False, lora_request=None):
        model = self.with_adapter(lora_request)
        outputs = []
        # vLLM stops at the checkpoint's EOS, and at the stop tokens it is given
        stops = [self.base.generation_config.eos_token_id, *sampling_params.stop_token_ids]
        for prompt in prompts:
            ids = torch.tensor([prompt["prompt_token_ids"]])
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=sampling_params.max_tokens, output_logits=True,
                                     return_dict_in_generate=True, eos_token_id=stops, pad_token_id=stops[0])
            tokens = out.sequences[0, ids.shape[1]:].tolist()
            logprobs = [{t: Logprob(float(torch.log_softmax(step[0].float(), -1)[t]))}
                        for t, step in zip(tokens, out.logits, strict=False)]
            assert all(not math.isnan(lp[t].logprob) for lp, t in zip(logprobs, tokens, strict=False))
            outputs.append(RequestOutput(prompt["prompt_token_ids"], [Completion(tokens, logprobs)]))
        return outputs

    def with_adapter(self, request):
        if request is None:
            return self.served.get_base_model() if self.served is not None else self.base
        assert self.enable_lora, "a LoRARequest to an LLM built without enable_lora"
        name = f"lora-{request.lora_int_id}"
        if self.served is None:
            from peft import PeftModel

            self.served = PeftModel.from_pretrained(self.base, request.lora_path, adapter_name=name)
            self.adapters_read.append(request.lora_path)
        elif name not in self.served.peft_config:
            self.served.load_adapter(request.lora_path, adapter_name=name)
            self.adapters_read.append(request.lora_path)
        self.keep_saved_dtype(request.lora_path, name)
        self.served.set_adapter(name)
        return self.served.eval()

    def keep_saved_dtype(self, path: str, name: str) -> None:
        """peft loads an adapter into fp32 weights on an fp32 base; put it back in the dtype it was saved in."""
        from pathlib import Path

        from safetensors.torch import load_file

        saved = next(iter(load_file(Path(path) / "adapter_model.safetensors").values())).dtype
        for param_name, param in self.served.named_parameters():
            if f".{name}." in param_name:
                param.data = param.data.to(saved)

    def reset_prefix_cache(self):
        self.prefix_cache_resets += 1


def install(monkeypatch) -> type[LLM]:
    """Make `import vllm` give the stand-in for this test; returns its LLM class (`LLM.built`: the engines built)."""
    import trl.generation.vllm_generation

    LLM.built = []
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    for name, module in {"vllm": vllm, "vllm.lora": lora, "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, module)
    # The engine sets the distributed setup vLLM's launcher reads (as TRL's does). Put back after the test: a
    # later process started from this one would otherwise take itself for one of several and wait for the rest.
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        was = os.environ.get(name)
        monkeypatch.setenv(name, was or "unset")  # recorded: teardown restores or removes it
        if was is None:
            monkeypatch.delenv(name)
    monkeypatch.setattr(trl.generation.vllm_generation, "SamplingParams", SamplingParams, raising=False)
    return LLM


def vllm_distribution(root, version: str):
    """`root` holding an installed `vllm` distribution of `version`, as pip leaves one, its package empty: what
    llmpost reads of vLLM before it imports it (its version)."""
    (root / "vllm").mkdir(parents=True)
    (root / "vllm" / "__init__.py").write_text("")
    info = root / f"vllm-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    return root
