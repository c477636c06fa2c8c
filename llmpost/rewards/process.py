"""Process reward models: a score for every step of a solution (`llmpost prm` trains them).

A process reward model (PRM) is a token-classification model with one output. It reads
the prompt (through the chat template, as a generation prompt) and then the solution,
one step at a time, each step followed by the separator "\\n"; a step's score is
sigmoid(output) at the step's last token, the probability that the step, and every
step before it, is right. The model is causal, so a step's score depends only on what
came before it, and one forward pass scores every step of a solution.

Why token classification, read at each step's last token, rather than a sequence
classifier run once per prefix: one pass instead of one per step, and the model loads
with plain `AutoModelForTokenClassification` (or peft's `AutoPeftModelForTokenClassification`).
Why one output and a sigmoid rather than two classes: labels may be soft (a share of
rollouts that reached the answer, as in Math-Shepherd) and a binary cross-entropy takes
them as they are.

Steps are encoded one by one (`step_input_ids`) the same way in training, scoring,
rewards and reranking, so a step's last token is known exactly, whatever the tokenizer
would merge across a newline.
"""

from __future__ import annotations

import math

from llmpost.errors import ModelError
from llmpost.rewards.reward_model import RewardModelScorer

STEP_SEPARATOR = "\n"
AGGREGATIONS = ("min", "prod", "last", "mean")
NOT_A_PRM_HINT = "train one with `llmpost prm --model REF`, or pass a token-classification model with one output"


def split_steps(text: str) -> list[str]:
    """A generated solution's steps: its non-empty lines."""
    return [line.strip() for line in text.split(STEP_SEPARATOR) if line.strip()]


def step_input_ids(tokenizer, prompt: list[dict], steps: list[str]) -> tuple[list[int], list[int]]:
    """(token ids of prompt + steps, the index of each step's last token)."""
    from llmpost.evaluation.generation import chat_prompt

    ids = tokenizer(chat_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]  # as generation reads it
    ends = []
    for step in steps:
        ids = ids + tokenizer(step + STEP_SEPARATOR, add_special_tokens=False)["input_ids"]
        ends.append(len(ids) - 1)
    return ids, ends


def score_encoded(model, encoded: list[tuple[list[int], list[int]]], batch_size: int = 32) -> list[list[float]]:
    """Each solution's step scores in [0, 1], in order (no gradients; the model's mode is restored)."""
    import torch

    from llmpost.evaluation.rows import pad_rows

    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # little padding
    scores: list[list[float]] = [[] for _ in encoded]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                ids, mask = pad_rows([encoded[i][0] for i in chunk], pad_id, left=False)
                device = next(model.parameters()).device
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
                probs = torch.sigmoid(logits[..., 0].float())
                for row, i in enumerate(chunk):
                    scores[i] = probs[row, encoded[i][1]].tolist()
    finally:
        model.train(was_training)
    return scores


def aggregate(scores: list[float], how: str = "min") -> float:
    """One score for a whole solution from its step scores (a solution without steps scores 0).

    min: as good as its weakest step (Lightman et al. use the product; min ranks alike
    and does not punish length); prod: the chance that every step is right; last: the
    final step's score, which already reads every step before it; mean.
    """
    if not scores:
        return 0.0
    if how == "min":
        return min(scores)
    if how == "prod":
        return math.prod(scores)
    if how == "last":
        return scores[-1]
    if how == "mean":
        return sum(scores) / len(scores)
    raise ValueError(f"unknown aggregation {how!r}; one of {', '.join(AGGREGATIONS)}")


def check_process_reward_model(src, trust_remote_code: bool = False) -> None:
    """Raise ModelError unless `src` is a token-classification model (or adapter) with one output."""
    from llmpost.rewards.reward_model import check_scorer

    check_scorer(src, trust_remote_code, task="TOKEN_CLS", architecture="ForTokenClassification",
                 what="a process reward model", hint=NOT_A_PRM_HINT)


def is_process_reward_model(src) -> bool:
    try:
        check_process_reward_model(src)
    except ModelError:
        return False
    return True


class ProcessRewardScorer(RewardModelScorer):
    """A process reward model loaded once, scoring solutions step by step as `llmpost prm` trained it.

    `ref` is an `llmpost prm` artifact (NAME, NAME@vN), a local directory or a hub id;
    `.artifact` is the store artifact (None for a plain directory), for lineage. Loaded as a
    reward model is (`RewardModelScorer`), as a token classifier.
    """

    model_kind = "tokcls"
    check = staticmethod(check_process_reward_model)

    def score_steps(self, prompts: list[list[dict]], solutions: list[list[str]]) -> list[list[float]]:
        """Each solution's step scores, in order; `solutions` are lists of steps."""
        if len(prompts) != len(solutions):
            raise ValueError(f"{len(prompts)} prompts but {len(solutions)} solutions")
        encoded = [step_input_ids(self.tokenizer, p, s) for p, s in zip(prompts, solutions, strict=True)]
        return score_encoded(self.model, encoded, self.batch_size)

    def score(self, prompts: list[list[dict]], completions: list[str], how: str = "min") -> list[float]:
        """One score per (prompt, completion text): its steps' scores aggregated (`aggregate`)."""
        steps = [split_steps(c) for c in completions]
        return [aggregate(s, how) for s in self.score_steps(prompts, steps)]


def step_ends(text: str) -> list[int]:
    """Where each step of `split_steps(text)` ends in `text`: the index of its last character.

    One index per step, in order: the same lines as `split_steps`, so a reward for a step's
    score can be placed where the writer finished that step (its trailing newline, and
    any spaces before it, are not part of the step; a last line without a newline is a step).
    """
    ends, start = [], 0
    for line in text.split(STEP_SEPARATOR):
        kept = line.rstrip()
        if kept.strip():
            ends.append(start + len(kept) - 1)
        start += len(line) + len(STEP_SEPARATOR)
    return ends
