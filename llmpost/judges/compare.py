"""Pairwise judging: every pair is asked in both orders, and the two verdicts become one outcome.

Position bias (preferring whichever answer is shown first) is the best-known
failure of LLM judges. Asking A/B and then B/A cancels it: a pair has a winner
only when both orders name the same response. Everything else is a tie, never a
silent win:

    consistent    both orders name the same response         -> that response wins
    tie           both orders say tie                        -> tie
    inconsistent  the orders disagree (incl. tie vs. winner) -> tie
    unparsed      a reply named no clear winner              -> tie (counted)
    failed        a request failed after every retry         -> tie (counted)
    identical     the two responses are the same text        -> tie, never asked
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmpost.judges.backend import Judge
from llmpost.judges.prompts import TIE, pairwise_messages, parse_verdict
from llmpost.judges.reply import Reply

KINDS = ("consistent", "tie", "inconsistent", "unparsed", "failed", "identical")


@dataclass(frozen=True)
class PairTask:
    """Compare responses `i` and `j` of group `group` (one prompt and its responses)."""

    group: int
    i: int
    j: int
    prompt: list[dict]
    text_i: str
    text_j: str


@dataclass
class Judgment:
    """One request: `first` was shown as A, `second` as B."""

    group: int
    first: int
    second: int
    verdict: str | None  # "A", "B", "tie", or None when unparsable or failed
    reply: str | None
    error: str | None = None
    cached: bool = False

    @property
    def winner(self) -> int | None | str:
        """The response index this verdict favours, "tie", or None."""
        if self.verdict == "A":
            return self.first
        if self.verdict == "B":
            return self.second
        return self.verdict  # "tie" or None


@dataclass
class PairVerdict:
    """A pair after both orders: `winner` is i, j or None (a tie of any kind); `kind` says why."""

    group: int
    i: int
    j: int
    winner: int | None
    kind: str


def combine(task: PairTask, forward: Judgment | None, backward: Judgment | None) -> PairVerdict:
    """One outcome from the A/B (`forward`: i first) and B/A (`backward`: j first) verdicts."""
    if forward is None or backward is None:
        return PairVerdict(task.group, task.i, task.j, None, "identical")
    if forward.error or backward.error:
        return PairVerdict(task.group, task.i, task.j, None, "failed")
    first, second = forward.winner, backward.winner
    if first is None or second is None:
        return PairVerdict(task.group, task.i, task.j, None, "unparsed")
    if first == second:
        return PairVerdict(task.group, task.i, task.j, None if first == TIE else first, "tie" if first == TIE else "consistent")
    return PairVerdict(task.group, task.i, task.j, None, "inconsistent")


def judge_pairs(judge: Judge, settings, tasks: list[PairTask],
                progress: Callable[[int], None] | None = None) -> tuple[list[PairVerdict], list[Judgment]]:
    """Ask every pair in both orders; return one outcome per task and every judgment made."""
    asked = [t for t in tasks if t.text_i != t.text_j]
    conversations = []
    for t in asked:
        conversations.append(pairwise_messages(settings, t.prompt, t.text_i, t.text_j))
        conversations.append(pairwise_messages(settings, t.prompt, t.text_j, t.text_i))
    replies = judge.ask(conversations, progress=progress)
    judgments: list[Judgment] = []
    by_task: dict[int, tuple[Judgment, Judgment]] = {}
    for n, t in enumerate(asked):
        forward = to_judgment(t.group, t.i, t.j, replies[2 * n])
        backward = to_judgment(t.group, t.j, t.i, replies[2 * n + 1])
        judgments += [forward, backward]
        by_task[id(t)] = (forward, backward)
    outcomes = [combine(t, *by_task.get(id(t), (None, None))) for t in tasks]
    return outcomes, judgments


def to_judgment(group: int, first: int, second: int, reply: Reply) -> Judgment:
    verdict = parse_verdict(reply.text) if reply.text is not None else None
    return Judgment(group, first, second, verdict, reply.text, reply.error, reply.cached)


def round_robin(group: int, prompt: list[dict], responses: list[str]) -> list[PairTask]:
    """Every unordered pair of `responses` (i < j)."""
    return [PairTask(group, i, j, prompt, responses[i], responses[j])
            for i in range(len(responses)) for j in range(i + 1, len(responses))]
