"""How well a process reward model judges steps, on held-out step-labelled solutions.

A step counts as flagged when its score is below 0.5 (and bad when its label is). Reported:

    step_accuracy          per solution, the share of its steps judged right, averaged over
                           solutions (each solution counts once, however many steps it has)
    first_error_accuracy   over solutions with a bad step: the first flagged step is the first
                           bad one (Lightman et al.'s localisation: not early, not late, not missed)
    solution_accuracy      over all solutions: "every step good" judged right
    good_share             the share of good steps: what always answering "good" would score

Each comes with its 95% interval, and, given a "before" set of scores for the same
solutions, with the paired change (`evaluation/report.change`).
"""

from __future__ import annotations

from llmpost.data.steps import StepRow

THRESHOLD = 0.5
SAMPLES = 5


def first_flagged(scores: list[float]) -> int | None:
    return next((i for i, s in enumerate(scores) if s < THRESHOLD), None)


def per_solution(rows: list[StepRow], scores: list[list[float]]) -> dict[str, list[float]]:
    """Each solution's figures (None where a figure does not apply), the items every interval resamples."""
    steps, first, solution = [], [], []
    for row, row_scores in zip(rows, scores, strict=True):
        right = [(s >= THRESHOLD) == (label >= THRESHOLD) for s, label in zip(row_scores, row.labels, strict=True)]
        steps.append(sum(right) / len(right))
        first.append(None if row.first_error is None else float(first_flagged(row_scores) == row.first_error))
        solution.append(float((first_flagged(row_scores) is None) == (row.first_error is None)))
    return {"step_accuracy": steps, "first_error_accuracy": first, "solution_accuracy": solution}


def step_report(rows: list[StepRow], scores: list[list[float]], before: list[list[float]] | None = None) -> dict:
    """The held-out report (see the module docstring), with the change from `before` when given."""
    from llmpost.evaluation.report import change, rounded
    from llmpost.evaluation.stats import bootstrap_interval, mean_or_none

    after = per_solution(rows, scores)
    earlier = per_solution(rows, before) if before is not None else None
    labels = [label for row in rows for label in row.labels]
    report: dict = {"n_solutions": len(rows), "n_steps": len(labels),
                    "good_share": sum(label >= THRESHOLD for label in labels) / len(labels) if labels else None}
    for name, values in after.items():
        kept = [v for v in values if v is not None]
        report[name] = mean_or_none(kept)
        report[f"{name}_ci"] = rounded(bootstrap_interval(kept))
        if earlier is not None:
            report[f"{name}_before"] = mean_or_none(v for v in earlier[name] if v is not None)
            paired = [(b, a) for b, a in zip(earlier[name], values, strict=True) if a is not None and b is not None]
            report |= change(name, paired)
    report["samples"] = [sample(row, s) for row, s in zip(rows[:SAMPLES], scores[:SAMPLES], strict=True)]
    return report


def sample(row: StepRow, scores: list[float]) -> dict:
    return {"prompt": row.prompt[-1]["content"], "steps": row.steps, "labels": row.labels,
            "scores": [round(s, 3) for s in scores]}
