"""`prm:REF[:agg=min|prod|last|mean]`: a process reward model as a reward, for grpo and ppo.

As a sequence reward (what every stage uses, and PPO's default), a completion's reward is
its steps' scores aggregated (`process.aggregate`, min unless `agg=` says otherwise).

PPO can instead credit each step where it ends (`process_rewards: dense`):
`DenseProcessRewards` gives the PRM's rewards as (character where the step ends, reward)
pairs, which `llmpost.rl.dense` places on the policy's tokens, and every other reward
stays a sequence reward on the last token.

How much each step gets. Scores are in [0, 1] and a score already reads every step before
it, so step k's reward is how much it changed the aggregate of the solution so far:

    r_k = agg(s_1 .. s_k) - agg(s_1 .. s_{k-1}),    agg(no steps) = 0

The sum telescopes to agg(s_1 .. s_n), the very reward `aggregate` mode gives: a dense and
an aggregated run see the same total per response (same magnitudes, same optimum, same
logged figures) and differ only in where GAE finds it. With min, the first step gets its
score and a later step is charged only when it lowers the running minimum, right where the
mistake is; with last, each step gets its change of score. The alternatives pay more for
more lines: each step's raw score (Math-Shepherd's PPO) sums to n x the mean, a reward for
padding a solution with easy steps; score / n_steps does not telescope to any aggregate, and
a bad step's penalty shrinks as the solution grows.
"""

from __future__ import annotations

import math

from llmpost.errors import ConfigError
from llmpost.rewards.process import AGGREGATIONS, aggregate, split_steps, step_ends

DEFAULT_AGGREGATION = "min"
SPEC_HINT = f"write prm:REF or prm:REF:agg=HOW, HOW one of {'|'.join(AGGREGATIONS)} (default {DEFAULT_AGGREGATION})"


def parse_prm_arg(arg: str | None) -> tuple[str, str]:
    """(model reference, aggregation) from the text after `prm:`; ConfigError listing what is accepted.

    Only a last `:agg=...` (or a last `:key=value`, to say it is unknown) is an option: the
    rest is the reference, whatever it holds.
    """
    text = (arg or "").strip()
    ref, sep, option = text.rpartition(":")
    if not sep or ("=" not in option and option != "agg"):
        ref, option = text, ""
    if not ref:
        raise ConfigError([f"reward prm:{text}: needs a process reward model"], hint="e.g. --reward prm:my-prm; " + SPEC_HINT)
    if not option:
        return ref, DEFAULT_AGGREGATION
    key, _, how = option.partition("=")
    if key != "agg":
        raise ConfigError([f"reward prm:{text}: unknown option {option!r}; prm takes agg="], hint=SPEC_HINT)
    if how not in AGGREGATIONS:
        raise ConfigError([f"reward prm:{text}: agg must be one of {', '.join(AGGREGATIONS)}, got {how!r}"],
                          hint=SPEC_HINT)
    return ref, how


def display_name(arg: str) -> str:
    """`prm:REF`, with `:agg=HOW` only when it is not the default: one reward, one name in the logs."""
    ref, how = parse_prm_arg(arg)
    return f"prm:{ref}" + (f":agg={how}" if how != DEFAULT_AGGREGATION else "")


class ProcessReward:
    """The reward `prm:REF[:agg=HOW]`: each completion's step scores (its lines), aggregated.

    A completion without steps scores 0. `.artifacts` is the PRM's store artifact (none for
    a plain directory or a hub id), for the stage's lineage.
    """

    def __init__(self, arg: str, store):
        from llmpost.rewards.process import ProcessRewardScorer  # torch, only when a PRM is used

        ref, self.how = parse_prm_arg(arg)
        self.scorer = ProcessRewardScorer(ref, store)
        self.artifacts = [self.scorer.artifact] if self.scorer.artifact is not None else []

    def step_scores(self, prompts: list[list[dict]], completions: list[str]) -> list[list[float]]:
        """Each completion's step scores, one per line of it (`process.split_steps`)."""
        return self.scorer.score_steps(prompts, [split_steps(c) for c in completions])

    def __call__(self, prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list[float]:
        return [aggregate(scores, self.how) for scores in self.step_scores(prompts, completions)]


def step_rewards(scores: list[float], how: str = DEFAULT_AGGREGATION) -> list[float]:
    """Each step's dense reward: how much it changed the aggregate so far; they sum to `aggregate(scores, how)`.

    See the module docstring for why this and not each step's own score.
    """
    rewards, before = [], 0.0
    for k in range(1, len(scores) + 1):
        now = aggregate(scores[:k], how)
        rewards.append(now - before)
        before = now
    return rewards


class DenseProcessRewards:
    """PPO's rewards under `process_rewards: dense`, from one loaded `CombinedReward` holding one `prm:` reward.

    `sequence` is the sequence reward: the weighted sum of every other reward, for the last
    token. `steps` is the PRM's: its weighted step rewards (`step_rewards`), each with the
    character of the completion where its step ends, and the PRM's aggregate as the value
    to log (the sum of its step rewards, unweighted). The PRM runs once per batch.
    """

    def __init__(self, reward):
        found = [i for i, fn in enumerate(reward.functions) if isinstance(fn, ProcessReward)]
        if len(found) != 1:
            raise ConfigError([f"process_rewards: dense needs exactly one prm:REF reward, got {len(found)} among "
                               f"{', '.join(reward.names)}"], hint="give one --reward prm:MY-PRM, or set "
                                                                   "process_rewards: aggregate")
        index = found[0]
        self.reward = reward
        self.name, self.weight, self.prm = reward.names[index], reward.weights[index], reward.functions[index]

    def sequence(self, prompts: list[list[dict]], completions: list[str],
                 rows: list[dict]) -> tuple[list[float], dict[str, list[float]]]:
        """(the other rewards' weighted total per completion, each one's values).

        The PRM applies to every completion, so none is left unrewarded: where no other reward
        applies (or there is none), the sequence reward is 0 rather than NaN.
        """
        per = self.reward.values(prompts, completions, rows, skip=self.name)
        totals = self.reward.total(per) if per else [0.0] * len(completions)
        return [0.0 if math.isnan(t) else t for t in totals], per

    def steps(self, prompts: list[list[dict]], completions: list[str],
              rows: list[dict]) -> tuple[list[list[tuple[int, float]]], dict[str, list[float]]]:
        """(per completion: (index of the step's last character, weighted reward) per step, {PRM name: aggregate})."""
        scores = self.prm.step_scores(prompts, completions)
        placed = [list(zip(step_ends(text), [self.weight * r for r in step_rewards(s, self.prm.how)], strict=True))
                  for text, s in zip(completions, scores, strict=True)]
        return placed, {self.name: [aggregate(s, self.prm.how) for s in scores]}
