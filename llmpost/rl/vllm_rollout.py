"""PPO rollouts sampled by vLLM (`llmpost ppo --vllm`).

vLLM samples much faster than transformers' `generate` on a GPU: paged KV cache,
continuous batching, CUDA graphs. TRL's `VLLMGeneration` runs it, in this process
(`colocate`, sharing the GPU) or in a separate `trl vllm-serve` (`server`), and
pushes the policy's current weights to it (LoRA adapters merged in; a LoRA policy on a
4-bit base sends its adapter alone, to a colocated vLLM: `rl/vllm_adapter.py`). vLLM only
samples: PPO still computes every log-prob with the policy itself, from the tokens
that vLLM chose.

torch, TRL and vLLM are imported only when rollouts are built; what a `--vllm` stage checks
before anything loads is in `rl/vllm_check.py`. vLLM is an optional extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmpost.rl.rollout import Rollout
    from llmpost.rl.settings import RolloutSettings


class VllmRollouts:
    """`(chat-formatted prompts) -> Rollout` for `PPOTrainer(rollouts=...)`, sampled by vLLM.

    `policy` is the causal LM or PeftModel holding the policy's weights (not the value
    head). Sampling follows `rollout` (temperature, top_p, max_new_tokens; no top-k), as
    `sample_rollout` does. vLLM draws from its own generator (seeded by process index,
    as in TRL), so a resumed run does not replay the same responses.
    """

    def __init__(self, policy, tokenizer, accelerator, rollout: RolloutSettings, *, mode: str = "colocate",
                 server_url: str | None = None, gpu_memory_utilization: float = 0.3,
                 max_prompt_length: int | None = None, max_num_seqs: int | None = None,
                 trust_remote_code: bool = False):
        from llmpost.rl.vllm_adapter import vllm_generation

        self.tokenizer, self.max_prompt_length, self.device = tokenizer, max_prompt_length, accelerator.device
        self.engine = vllm_generation(
            policy, accelerator, tokenizer, mode=mode, server_base_url=server_url,  # None: TRL's 0.0.0.0:8000
            gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
            # The longest sequence PPO makes; the model's full context would only cost KV-cache memory.
            max_model_length=max_prompt_length + rollout.max_new_tokens if max_prompt_length else None,
            trust_remote_code=trust_remote_code, temperature=rollout.temperature, top_p=rollout.top_p, top_k=0,
            max_completion_length=rollout.max_new_tokens,
            # vLLM stops at the EOS of the tokenizer it loads from the base; a chat-tuned one may end turns with another.
            generation_kwargs={"stop_token_ids": [tokenizer.eos_token_id]},
        )

    def __call__(self, prompt_texts: list[str]) -> Rollout:
        from llmpost.rl.rollout import prompt_token_lists, rollout_from_token_lists

        # Every call pushes the weights: in PPO each rollout follows an update of the policy, and the
        # first follows a load vLLM has not seen (an adapter, a resumed checkpoint): no call could skip it.
        self.engine.sync_weights()
        prompt_ids = prompt_token_lists(self.tokenizer, prompt_texts, self.max_prompt_length)
        _, completion_ids, _, _ = self.engine.generate(prompts=prompt_ids, images=None, num_generations=1)
        return rollout_from_token_lists(prompt_ids, completion_ids, self.tokenizer, self.device)
