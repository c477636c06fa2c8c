"""Reward functions shared by grpo, ppo and eval: verifiers, reward models, judges, user functions."""
