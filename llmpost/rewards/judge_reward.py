"""`--reward judge:...`: an LLM judge as the reward of GRPO/PPO, through the same backends as `llmpost judge`.

    reward = make_judge_reward("judge:judge-model", store)
    reward(prompts, completions, rows) -> [float in 0..1]

Completions of the same prompt (GRPO's group) play a round robin, each pair
judged in both orders; a completion's reward is its win rate, a tie counting a
half (identical completions, inconsistent or unparsable verdicts are ties).
A completion alone with its prompt (PPO) is compared with the row's reference
response when there is one (`reference_response`, `chosen` or `completion`) and
scored 1 / 0.5 / 0 for win / tie / loss; otherwise the judge scores it from 1 to
10 (`judge.score_template`), scaled to 0..1, and an unparsable score is 0.5.

The spec syntax is described in `llmpost.judges.settings`. The judge model is
loaded on the first call, and judgments go through the store's judgment cache.
`reward.stats` counts what happened; `reward.model_refs` lists the local judge
model, for a stage to record in its lineage.
"""

from __future__ import annotations

import json

from llmpost.judges.settings import parse_judge_spec
from llmpost.rewards.spec import RewardFn

REFERENCE_KEYS = ("reference_response", "chosen", "completion")
NEUTRAL = 0.5


def make_judge_reward(spec: str, store) -> RewardFn:
    """A reward function asking the judge `spec` names; `store` resolves model refs and holds the cache."""
    settings = parse_judge_spec(spec)
    state: dict = {}

    def judge():
        if "judge" not in state:
            from llmpost.judges.backend import open_judge

            src = None
            if settings.backend == "local":
                from llmpost.models.load import resolve_model

                src = resolve_model(settings.model, store)
            state["judge"] = open_judge(settings, model_source=src, cache_root=store.root if store else None)
        return state["judge"]

    def reward(prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list[float]:
        rows = rows or [{} for _ in completions]
        scores = [NEUTRAL] * len(completions)
        groups: dict[str, list[int]] = {}
        for k, prompt in enumerate(prompts):
            groups.setdefault(json.dumps(prompt, sort_keys=True), []).append(k)
        tournaments = [members for members in groups.values() if len(members) > 1]
        alone = [members[0] for members in groups.values() if len(members) == 1]
        if tournaments:
            round_robin_scores(judge(), settings, prompts, completions, tournaments, scores, reward.stats)
        with_reference = [k for k in alone if reference_of(rows[k]) is not None]
        if with_reference:
            versus_reference(judge(), settings, prompts, completions, rows, with_reference, scores, reward.stats)
        pointwise = [k for k in alone if reference_of(rows[k]) is None]
        if pointwise:
            pointwise_scores(judge(), settings, prompts, completions, pointwise, scores, reward.stats)
        return scores

    reward.__name__ = "judge"  # trainers name the logged reward after the function
    reward.stats = {"calls": 0, "pairs": 0, "ties": 0, "unparsed": 0, "failed": 0}
    reward.model_refs = [settings.model] if settings.backend == "local" else []
    reward.settings = settings
    reward.usage = lambda: state["judge"].usage.as_dict() if "judge" in state else None
    return reward


def reference_of(row: dict) -> str | None:
    """A reference response to compare a lone completion with, as text."""
    for key in REFERENCE_KEYS:
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list) and value and isinstance(value[-1], dict):
            return str(value[-1].get("content", ""))
    return None


def round_robin_scores(judge, settings, prompts, completions, groups, scores, stats) -> None:
    """Win rate of each completion against the others of its prompt (ties count a half)."""
    from llmpost.judges.compare import judge_pairs, round_robin

    tasks = []
    for g, members in enumerate(groups):
        tasks += round_robin(g, prompts[members[0]], [completions[k].strip() for k in members])
    outcomes, _ = judge_pairs(judge, settings, tasks)
    points = {k: 0.0 for members in groups for k in members}
    for o in outcomes:
        members = groups[o.group]
        count(stats, o.kind)
        if o.winner is None:
            points[members[o.i]] += 0.5
            points[members[o.j]] += 0.5
        else:
            points[members[o.winner]] += 1.0
    for members in groups:
        for k in members:
            scores[k] = points[k] / (len(members) - 1)


def versus_reference(judge, settings, prompts, completions, rows, which, scores, stats) -> None:
    """1 / 0.5 / 0 for a completion that beats / ties / loses to the row's reference response."""
    from llmpost.judges.compare import PairTask, judge_pairs

    tasks = [PairTask(n, 0, 1, prompts[k], completions[k].strip(), reference_of(rows[k]).strip())
             for n, k in enumerate(which)]
    outcomes, _ = judge_pairs(judge, settings, tasks)
    for k, o in zip(which, outcomes, strict=True):
        count(stats, o.kind)
        scores[k] = NEUTRAL if o.winner is None else float(o.winner == 0)


def pointwise_scores(judge, settings, prompts, completions, which, scores, stats) -> None:
    """The judge's 1-10 score of each completion scaled to 0..1; unparsable or failed: 0.5."""
    from llmpost.judges.prompts import parse_score, pointwise_messages

    replies = judge.ask([pointwise_messages(settings, prompts[k], completions[k]) for k in which])
    for k, reply in zip(which, replies, strict=True):
        value = parse_score(reply.text)
        stats["calls"] += 1
        if reply.text is None:
            stats["failed"] += 1
        elif value is None:
            stats["unparsed"] += 1
        scores[k] = NEUTRAL if value is None else value


def count(stats: dict, kind: str) -> None:
    stats["calls"] += 2 if kind != "identical" else 0
    stats["pairs"] += 1
    if kind in ("tie", "inconsistent", "identical"):
        stats["ties"] += 1
    elif kind in ("unparsed", "failed"):
        stats[kind] += 1
