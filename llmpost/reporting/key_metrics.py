"""Each stage's key metric: the one held-out figure that says how well it did, where only one fits.

`llmpost ls` shows it for every artifact; a run's summary shows it for the stages that have no
held-out exact match (a reward model's pairwise accuracy, a judge's agreement with the truth).
The rest stay in `llmpost show`, `--json` and report.md.
"""

from __future__ import annotations

from typing import Any

# Per stage, in order of preference: the first one an artifact's metrics hold is its key metric.
# Held-out figures, so artifacts of one stage compare.
KEY_METRICS = {
    "sft": ("exact_match",),
    "dpo": ("exact_match", "reward_accuracy"),
    "kto": ("exact_match", "label_accuracy"),
    "ppo": ("exact_match", "reward"),
    "grpo": ("exact_match", "reward"),
    "eval": ("exact_match",),
    "rm": ("accuracy",),  # pairwise: the held-out share of pairs ranked the right way
    "prm": ("step_accuracy",),  # the held-out share of steps judged right, per solution
    "judge": ("ground_truth_agreement", "position_consistency"),
}


def key_metric(stage: str | None, metrics: dict[str, Any]) -> str | None:
    """The name of `stage`'s key metric among `metrics` (None when they hold none of its key metrics)."""
    return next((k for k in KEY_METRICS.get(str(stage), ()) if is_number(metrics.get(k))), None)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
