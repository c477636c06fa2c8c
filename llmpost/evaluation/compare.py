"""Two models on the same held-out items: the paired figures behind `llmpost compare`.

Each model brings, per item id (`heldout.prompt_id`), whether it answered right. Only the
items both models were checked on are compared, so the two exact matches and their
difference count the same items:

    exact match of A and of B     with 95% Wilson intervals
    B - A                         with the 95% paired bootstrap interval over items (stats.py)
    McNemar counts                right->wrong, wrong->right (and both right, both wrong): the
                                  items that decide the change; an exact two-sided p-value on them

Where the models' answers come from (an artifact's eval_items.jsonl, or a fresh evaluation)
is the caller's business (`pipeline/compare.py`); this module only counts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from llmpost.evaluation.report import INTERVALS, rounded
from llmpost.evaluation.stats import CONFIDENCE, bootstrap_interval, wilson_interval


@dataclass
class Answers:
    """One model's checked answers: item id -> right or wrong, and where they came from."""

    ref: str  # as the user named it
    resolved: str  # what it resolved to: NAME@vN, 'tiny', a path or hub id
    correct: dict[str, bool]
    stored: int = 0  # items read from its artifact's eval_items.jsonl
    evaluated: int = 0  # items evaluated for this comparison


@dataclass
class Side:
    """One model's figures on the compared items."""

    ref: str
    resolved: str
    exact_match: float | None
    exact_match_ci: list[float] | None
    stored: int
    evaluated: int


@dataclass
class McNemar:
    """The paired items by outcome: only the items that changed (the discordant ones) move B - A."""

    right_to_wrong: int  # A right, B wrong
    wrong_to_right: int  # A wrong, B right
    both_right: int
    both_wrong: int
    p_value: float = field(init=False)

    def __post_init__(self) -> None:
        self.p_value = mcnemar_exact_p(self.right_to_wrong, self.wrong_to_right)


@dataclass
class Comparison:
    data: str  # the held-out data ref
    rows: int  # its rows compared on (the first `rows`)
    n: int  # items both models were checked on
    a: Side
    b: Side
    delta: float | None  # B - A exact match
    delta_ci: list[float] | None
    mcnemar: McNemar

    def to_dict(self) -> dict:
        """The comparison as one JSON object (`llmpost compare --json`)."""
        return {**asdict(self), "intervals": INTERVALS}

    @property
    def verdict(self) -> str:
        """What the paired interval says, in words."""
        if self.n == 0 or self.delta_ci is None:
            return "no item was checked for both models: nothing to compare"
        low, high = self.delta_ci
        if self.mcnemar.right_to_wrong == self.mcnemar.wrong_to_right == 0:
            return "no item changed: the two are right and wrong on the same items"
        if low <= 0 <= high:
            return "no difference distinguishable on these items (the interval holds 0)"
        verdict = f"B is {'better' if low > 0 else 'worse'} on these items (the interval is {'above' if low > 0 else 'below'} 0)"
        # With a handful of changed items the percentile bootstrap is too sure of itself; the exact test is not.
        if self.mcnemar.p_value >= 1 - CONFIDENCE:
            verdict += f", but few items changed (McNemar p = {self.mcnemar.p_value:.2g}): a hint, not evidence"
        return verdict

    def lines(self) -> list[str]:
        """The comparison as text for a terminal."""
        width = max(len(self.a.resolved), len(self.b.resolved))
        counts = self.mcnemar
        return [
            f"held-out: {self.data}, first {self.rows} rows: {self.n} items both were checked on",
            *(f"  {label:<5}  {side.resolved:<{width}}  exact match {rate_text(side)}   {source_text(side)}"
              for label, side in (("A", self.a), ("B", self.b))),
            f"  B - A  {signed(self.delta)}{interval_text(self.delta_ci)}   {self.verdict}",
            f"  items  right->wrong {counts.right_to_wrong}, wrong->right {counts.wrong_to_right} "
            f"(both right {counts.both_right}, both wrong {counts.both_wrong}; McNemar exact p = {counts.p_value:.2g})",
            f"95% intervals: {INTERVALS.removeprefix('95%: ')}",
        ]


def compare_answers(a: Answers, b: Answers, order: list[str], data: str) -> Comparison:
    """The paired comparison of `b` against `a` on the items of `order` (the ids of `data`'s rows) both were checked on.

    `order` fixes the item order, so the bootstrap draws (seeded) are the same on every run.
    """
    ids = [i for i in dict.fromkeys(order) if i in a.correct and i in b.correct]
    pairs = [(a.correct[i], b.correct[i]) for i in ids]
    counts = McNemar(
        right_to_wrong=sum(x and not y for x, y in pairs), wrong_to_right=sum(y and not x for x, y in pairs),
        both_right=sum(x and y for x, y in pairs), both_wrong=sum(not x and not y for x, y in pairs),
    )
    differences = [float(y) - float(x) for x, y in pairs]
    return Comparison(
        data=data, rows=len(order), n=len(ids),
        a=side(a, [x for x, _ in pairs]), b=side(b, [y for _, y in pairs]),
        delta=sum(differences) / len(ids) if ids else None,
        delta_ci=rounded(bootstrap_interval(differences)),
        mcnemar=counts,
    )


def side(answers: Answers, hits: list[bool]) -> Side:
    return Side(answers.ref, answers.resolved, sum(hits) / len(hits) if hits else None,
                rounded(wilson_interval(sum(hits), len(hits))), answers.stored, answers.evaluated)


def mcnemar_exact_p(right_to_wrong: int, wrong_to_right: int) -> float:
    """Two-sided exact McNemar test: under no difference, each changed item goes either way with chance 1/2."""
    n = right_to_wrong + wrong_to_right
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(right_to_wrong, wrong_to_right) + 1)) / 2**n
    return min(1.0, 2 * tail)


def rate_text(side: Side) -> str:
    if side.exact_match is None:
        return "-"
    return f"{side.exact_match:.3f}{interval_text(side.exact_match_ci, sign='')}"


def source_text(side: Side) -> str:
    parts = [f"{side.stored} from its eval_items.jsonl" if side.stored else "",
             f"{side.evaluated} evaluated now" if side.evaluated else ""]
    return "items: " + (", ".join(p for p in parts if p) or "none")


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def interval_text(interval: list[float] | None, sign: str = "+") -> str:
    return "" if interval is None else f" [{interval[0]:{sign}.3f}, {interval[1]:{sign}.3f}]"
