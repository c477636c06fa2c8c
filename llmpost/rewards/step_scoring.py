"""`llmpost score` with a process reward model: a score for every step of every row."""

from __future__ import annotations

from llmpost.rewards.process import ProcessRewardScorer, aggregate, split_steps


def score_step_rows(scorer: ProcessRewardScorer, rows: list[dict], source: str) -> tuple[list[dict], dict | None]:
    """Rows with `step_scores` (one per step) and `score` (the weakest step's) added, and a report.

    Step-labelled rows (`data/steps.py`'s shapes) are scored step by step as given, and the
    report is `rewards/step_report.step_report` against their labels. Any prompt + completion
    (or SFT) row is split into steps at its lines; those have no labels and no report.
    """
    from llmpost.data.formats import completion_text, to_sft
    from llmpost.data.steps import is_step_labelled, to_step_rows
    from llmpost.rewards.reward_model import with_completion
    from llmpost.rewards.step_report import step_report

    if rows and is_step_labelled(rows[0]):
        labelled = to_step_rows(rows, source)
        scores = scorer.score_steps([r.prompt for r in labelled], [r.steps for r in labelled])
        return [with_scores(row, s) for row, s in zip(rows, scores, strict=True)], step_report(labelled, scores)
    examples = to_sft([with_completion(r) for r in rows], source)
    steps = [split_steps(completion_text(e["completion"])) for e in examples]
    scores = scorer.score_steps([e["prompt"] for e in examples], steps)
    return [with_scores(row, s) for row, s in zip(rows, scores, strict=True)], None


def with_scores(row: dict, step_scores: list[float]) -> dict:
    return {**row, "step_scores": step_scores, "score": aggregate(step_scores, "min")}
