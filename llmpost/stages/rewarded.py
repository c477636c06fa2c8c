"""What the stages that optimise rewards on prompts (`grpo`, `ppo`) share in their config."""

from __future__ import annotations

from pydantic import field_validator

from llmpost.config.base import TrainConfig, builtin_test_split


class RewardedConfig(TrainConfig):
    """A `TrainConfig` whose stage samples answers to prompts and scores them with `rewards` (a subclass field)."""

    @field_validator("rewards", check_fields=False)
    @classmethod
    def known_rewards(cls, specs: list[str]) -> list[str]:
        """Every reward spec is known and well-formed, before any model loads."""
        from llmpost.rewards.registry import check_reward_specs

        return check_reward_specs(specs, required=True)

    def default_held_out(self) -> str | None:
        """Held-out prompts: by default the test split of built-in training prompts; none for other data."""
        return builtin_test_split(self.data)
