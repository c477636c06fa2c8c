"""TRL's GRPOTrainer, timing its parts, sampling without finished rows, and running the policy's forward in passes.

Timing: TRL's own `step_time` covers the whole step; `time/generation` and `time/reward`
(seconds) say where it goes. Training = step_time - generation - reward when each step
generates once (grad_accum = num_iterations = 1).

Sampling: TRL's `model.generate` decodes every row until the longest completion ends. Here a
row leaves the batch, and its KV cache, at its end-of-turn token (`evaluation/generation.py:
sampled_rows`, the loop that greedy evaluation uses), with generate's warpers and draws. SmolLM2
sampling 32 completions of up to 96 tokens (47-59 on average) took 21-22 s on 2 cores against
26-27 s with generate; in the real-model recipe, where answers shrink to 27-30 tokens on average
while the longest of a step still takes 60-96, 12-20 s a step against 23-29 s. Left to `generate`: vLLM,
continuous batching, images, sharded models (DeepSpeed, FSDP) and a generation config with more
than temperature, top-k, top-p and min-p.

vLLM (`--vllm`): TRL's engine, except for a LoRA policy on a 4-bit base, whose adapter alone is
synced to vLLM (`rl/vllm_adapter.py`) where TRL would merge it into the 4-bit weights.

Passes: TRL runs the policy over a step's whole batch at once, every completion padded to
the longest. On a CPU that one large pass is slow for its size: SmolLM2 over 32 completions
(55 prompt tokens, 60 completion tokens on average, padded to 96; LoRA on its top 10 layers)
took 47-49 s forward and backward on 2 cores, and 26-27 s as four passes of 8 rows sorted by
completion length, each cut to its own longest completion, one backward after all four. Here
the rows run `forward_batch_size` at a time in that order, each pass cut to its longest
completion and prompt (`rl/columns.py`, as PPO's passes); the log-probabilities go back to their
rows, padded as TRL expects.
The one backward over the whole batch keeps every loss type's normalisation and every
metric TRL's own.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from trl import GRPOTrainer
from trl.models.utils import unwrap_model_for_generation

from llmpost.evaluation.generation import plain_sampling, sampled_rows
from llmpost.rl.columns import own_columns


class LlmpostGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that logs its generation and reward time, samples in rows that leave the batch when they
    end, and runs its forward in passes of `forward_batch_size` completions."""

    def __init__(self, *args, forward_batch_size: int | None = None, **kwargs):
        import trl.trainer.grpo_trainer

        from llmpost.rl.vllm_adapter import vllm_generation_in

        with vllm_generation_in(trl.trainer.grpo_trainer):  # vLLM gets a 4-bit base's adapter alone
            super().__init__(*args, **kwargs)
        self.forward_batch_size = forward_batch_size

    def _generate(self, prompts):
        start = time.perf_counter()
        try:
            return super()._generate(prompts)
        finally:
            self._record_time("time/generation", start)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if not self.samples_in_rows(images, multimodal_fields):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        config = self.generation_config
        with unwrap_model_for_generation(self.model_wrapped, self.accelerator,
                                         gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs) as model:
            completion_ids = sampled_rows(
                model, prompt_ids, stop_token_ids=self.eos_token_ids, pad_token_id=self._tokenizer.pad_token_id,
                max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_k=config.top_k,
                top_p=config.top_p, min_p=config.min_p)
        return completion_ids, None  # no sampling log-probs, as TRL's own generate path

    def samples_in_rows(self, images, multimodal_fields) -> bool:
        """Whether this generation can go to `sampled_rows` (text only, one process's whole model, plain sampling)."""
        if self.use_vllm or self.use_transformers_continuous_batching:
            return False  # another engine: TRL builds no `generation_config` for it
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled
        config = self.generation_config
        return (not sharded and images is None and not multimodal_fields
                and bool(config.do_sample) and plain_sampling(config))

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        start = time.perf_counter()
        try:
            return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        finally:
            self._record_time("time/reward", start)

    def _record_time(self, key: str, start: float) -> None:
        mode = "train" if self.model.training else "eval"
        self._metrics[mode][key].append(time.perf_counter() - start)

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **extra_inputs):
        whole = super()._get_per_token_logps_and_entropies
        rows = input_ids.size(0)
        multimodal = any(value is not None for value in extra_inputs.values())
        if self.forward_batch_size is None or rows <= self.forward_batch_size or multimodal:
            return whole(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                         compute_aux_loss, **extra_inputs)

        prompt_width = input_ids.size(1) - logits_to_keep
        completion_lengths = attention_mask[:, prompt_width:].sum(dim=1)  # right-padded, up to the first EOS
        order = completion_lengths.argsort(stable=True)
        logps, entropies, aux_losses = [], [], []
        for rows_of_pass in order.split(self.forward_batch_size):
            cols = own_columns(attention_mask[rows_of_pass], logits_to_keep)
            pass_logps, pass_entropies, pass_aux = whole(
                model, input_ids[rows_of_pass, cols.start:cols.stop], attention_mask[rows_of_pass, cols.start:cols.stop],
                cols.response, None, compute_entropy, compute_aux_loss)
            logps.append(F.pad(pass_logps, (0, logits_to_keep - cols.response)))
            if compute_entropy:
                entropies.append(F.pad(pass_entropies, (0, logits_to_keep - cols.response)))
            if compute_aux_loss:
                aux_losses.append(pass_aux)
        back = order.argsort()  # sorted position -> original row
        return (torch.cat(logps)[back],
                torch.cat(entropies)[back] if compute_entropy else None,
                torch.stack(aux_losses).mean() if compute_aux_loss else None)
