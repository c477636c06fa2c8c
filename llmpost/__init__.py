"""llmpost: the whole LLM post-training flow as shell commands.

Stages (sft, rm, ppo, dpo, kto, judge, grpo) read artifacts and write new, immutable,
versioned artifact directories with a manifest that records their lineage.
"""

__version__ = "0.1.0"
