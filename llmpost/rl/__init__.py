"""llmpost's own PPO (actor-critic), built on torch + transformers + peft + accelerate.

Read in this order, it is the textbook algorithm:

    rollout.py     sample responses from the policy (batched, temperature, EOS stop)
    policy.py      the policy, its frozen reference and how they share one base model
    value_head.py  the critic: a linear value head on the policy's trunk
    kl.py          per-token KL estimates, KL-penalised rewards, fixed/adaptive KL control
    scaling.py     running reward normalisation and clipping
    masked.py      means, variances and whitening over response tokens only
    gae.py         generalised advantage estimation over response tokens
    logprobs.py    log-probs and entropies of sampled tokens, a few positions of the logits at a time
    losses.py      clipped surrogate policy loss, clipped value loss
    trainer.py     one PPO step: rollout -> score -> advantages -> epochs of minibatch updates
    trunk.py       the frozen layers below the adapter: computed once a step, replayed after
    columns.py     each pass over a micro-batch skips the columns all its rows pad
    settings.py    every knob, with its default and why

and, optionally, vllm_rollout.py: the same rollouts sampled by vLLM (`--vllm`), the
policy's current weights pushed to it before each one (vllm_adapter.py: only the LoRA
adapter, for a policy on a 4-bit base), checked first by vllm_check.py.

Nothing here knows about the artifact store or the CLI: `llmpost.stages.ppo` wires
this to artifacts, and anyone can drive `PPOTrainer` from Python with any reward
function.
"""
