"""Reward models: score responses with one (`RewardModelScorer`) and judge it on preference data.

A reward model is a sequence-classification model with one output (what `llmpost rm`
writes, or any such Hugging Face model). It reads the prompt and the response through
the tokenizer's chat template, exactly as `llmpost rm` trained it, and its reward is
the output at the last token.

Preference data is judged per prompt: `group_by_prompt` gathers every comparison of
a prompt (from one ranking, several rankings, or hand-written pairs) into one
`PromptComparisons` whose pair weights sum to 1, and `preference_report` turns the
rewards of its responses into held-out figures (pairwise accuracy, margins, length
bias). Training (`llmpost.stages.rm`) uses the same groups, so a prompt counts once in
the loss and once in the accuracy.

Heavy imports (torch, transformers, peft) happen inside functions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmpost.data.formats import assistant
from llmpost.errors import ModelError

NOT_A_REWARD_MODEL_HINT = (
    "train one with `llmpost rm --model REF`, or pass a sequence-classification model with one output"
)


# --- what the reward model reads -----------------------------------------------------------


def reward_input_ids(tokenizer, prompt: list[dict], response: str) -> list[int]:
    """Token ids of prompt + response as a reward model reads them (training and scoring alike).

    With a chat template: the conversation with the response as the final assistant
    turn. Without one: the prompt turns joined as `llmpost generate` writes them, the
    response, then EOS, so the last token closes the response.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([*prompt, assistant(response)], tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    from llmpost.evaluation.generation import chat_prompt

    return tokenizer(chat_prompt(tokenizer, prompt) + response + (tokenizer.eos_token or ""))["input_ids"]


def score_sequences(model, sequences: list[list[int]], batch_size: int = 32) -> list[float]:
    """The reward of each token-id sequence, in order (no gradients; the model's mode is restored).

    Similar lengths are scored together (far less padding than in the given order), equal
    sequences once, and a start that every sequence of a batch shares (a chat template's
    system prompt) once for the batch (`forward_distinct`): the recipe's reward model scored
    64 PPO responses (4829 tokens, 27 of each shared) in 5.8-5.9 s instead of 8.5-9.1 on 2
    cores. The scores differ from a whole pass by rounding only (8e-6 there).
    """
    import torch
    from transformers import DynamicCache

    from llmpost.evaluation.rows import forward_distinct

    pad_id = model.config.pad_token_id
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    rewards = [0.0] * len(sequences)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                distinct = list(dict.fromkeys(tuple(sequences[i]) for i in chunk))
                scores, _ = forward_distinct(model, distinct, DynamicCache(config=model.config), pad_id, keep=False)
                by_sequence = dict(zip(distinct, scores[:, 0].float().tolist(), strict=True))
                for i in chunk:
                    rewards[i] = by_sequence[tuple(sequences[i])]
    finally:
        model.train(was_training)
    return rewards


# --- comparisons per prompt ----------------------------------------------------------------


@dataclass
class PromptComparisons:
    """Every comparison made for one prompt: its distinct responses and weighted index pairs.

    `better[i]` should out-score `worse[i]`, by at least `margin[i]` when margins are
    used; the weights of one prompt sum to 1.
    """

    prompt: list[dict]
    responses: list[str] = field(default_factory=list)
    ranks: list[int | None] = field(default_factory=list)  # as ranked, when known (for reports)
    better: list[int] = field(default_factory=list)
    worse: list[int] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    margin: list[float] = field(default_factory=list)


def group_by_prompt(pairs: list[dict]) -> list[PromptComparisons]:
    """Gather weighted chosen/rejected pairs (from `data.preferences`) by prompt.

    Each distinct response is kept once, so a ranking of K gives K sequences to score
    however many pairs it yields. Pair weights are renormalised to sum to 1 per prompt:
    a ranking's pairs keep their 1/npairs weights, and a prompt that appears in several
    rows (hand-expanded pairs, or several rankings) still counts once in total.
    """
    groups: dict[str, PromptComparisons] = {}
    index: dict[str, dict[str, int]] = {}
    for pair in pairs:
        key = json.dumps(pair["prompt"], sort_keys=True)
        group = groups.setdefault(key, PromptComparisons(prompt=pair["prompt"]))
        seen = index.setdefault(key, {})
        ids = []
        for text in (pair["chosen"][-1]["content"], pair["rejected"][-1]["content"]):
            if text not in seen:
                seen[text] = len(group.responses)
                group.responses.append(text)
            ids.append(seen[text])
        group.better.append(ids[0])
        group.worse.append(ids[1])
        group.weight.append(float(pair.get("weight", 1.0)))
        group.margin.append(float(pair.get("margin", 0.0)))
    for group in groups.values():
        total = sum(group.weight)
        group.weight = [w / total for w in group.weight]
        group.ranks = implied_ranks(group)
    return list(groups.values())


def implied_ranks(group: PromptComparisons) -> list[int]:
    """Rank of each response (0 = best) as the number of responses shown to beat it."""
    beaten_by = [set() for _ in group.responses]
    for b, w in zip(group.better, group.worse, strict=True):
        beaten_by[w].add(b)
    return [len(s) for s in beaten_by]


# --- judging a reward model on preference data --------------------------------------------


def preference_report(groups: list[PromptComparisons], rewards: list[list[float]], keep_samples: int = 5) -> dict:
    """Held-out figures of a reward model from the rewards it gave each group's responses.

    accuracy: share of pairs ranked right (reward(better) > reward(worse)), each
    prompt weighted once as in training; accuracy_top: the same on the pairs whose
    better response is the prompt's best (does it pick out the best response?);
    accuracy_across_prompts: the share of (best response, lower-ranked response) pairs, taken
    from any two prompts, that the rewards order right. PPO and GRPO compare rewards across
    prompts, while a ranking fixes each prompt's rewards only up to a shift: with the
    quickstart's data and no centering (`center_rewards`), right answers scored 0.53 on
    average and wrong ones 0.66. mean_margin: weighted mean of
    reward(better) - reward(worse); reward_mean/std over all scored responses;
    length_corr: Pearson correlation of reward with response length in characters
    (near 0 is good; strongly positive means longer answers win regardless).
    """
    right = total = margin = 0.0
    top: list[float] = []  # per prompt: accuracy on the pairs its best response is in
    bests: list[float] = []  # every prompt's best responses' rewards, and the others', for accuracy_across_prompts
    others: list[float] = []
    n_pairs = 0
    for group, r in zip(groups, rewards, strict=True):
        best = min(group.ranks)
        for x, rank in zip(r, group.ranks, strict=True):
            (bests if rank == best else others).append(x)
        top_right = top_total = 0.0
        for b, w, weight in zip(group.better, group.worse, group.weight, strict=True):
            correct = float(r[b] > r[w])
            right += weight * correct
            total += weight
            margin += weight * (r[b] - r[w])
            n_pairs += 1
            if group.ranks[b] == best:
                top_right += weight * correct
                top_total += weight
        top.append(top_right / top_total)
    flat = [x for r in rewards for x in r]
    lengths = [len(t) for g in groups for t in g.responses]
    return {
        "accuracy": right / total if total else None,
        "accuracy_top": mean(top),
        "accuracy_across_prompts": share_above(bests, others),
        "mean_margin": margin / total if total else None,
        "reward_mean": mean(flat),
        "reward_std": std(flat),
        "length_corr": pearson(flat, lengths),
        "n_prompts": len(groups),
        "n_pairs": n_pairs,
        "samples": [
            {"prompt": g.prompt[-1]["content"],
             "responses": [{"rank": rank, "reward": round(x, 4), "text": t}
                           for t, rank, x in sorted(zip(g.responses, g.ranks, r, strict=True), key=lambda z: z[1])]}
            for g, r in list(zip(groups, rewards, strict=True))[:keep_samples]
        ],
    }


def share_above(highs: list[float], lows: list[float]) -> float | None:
    """The share of (high, low) pairs with high > low, ties counting half (the Mann-Whitney AUC).

    By ranks, so n log n rather than every pair.
    """
    if not highs or not lows:
        return None
    values = sorted([(x, True) for x in highs] + [(x, False) for x in lows])
    rank_sum, i = 0.0, 0
    while i < len(values):
        j = i
        while j < len(values) and values[j][0] == values[i][0]:
            j += 1
        average_rank = (i + 1 + j) / 2  # ranks i+1..j share their mean
        rank_sum += average_rank * sum(1 for _, high in values[i:j] if high)
        i = j
    n = len(highs)
    return (rank_sum - n * (n + 1) / 2) / (n * len(lows))


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def std(xs: list[float]) -> float | None:
    if not xs:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation, or None when either side is constant (no correlation to speak of)."""
    sx, sy = std(xs), std([float(y) for y in ys])
    if not sx or not sy:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / (len(xs) * sx * sy)


# --- loading and scoring -------------------------------------------------------------------


def check_reward_model(src, trust_remote_code: bool = False) -> None:
    """Raise ModelError unless `src` is a sequence-classification model (or adapter) with one output."""
    check_scorer(src, trust_remote_code, task="SEQ_CLS", architecture="ForSequenceClassification",
                 what="a reward model", hint=NOT_A_REWARD_MODEL_HINT)


def check_scorer(src, trust_remote_code: bool, *, task: str, architecture: str, what: str, hint: str) -> None:
    """Raise ModelError unless `src` is a one-output classifier: an adapter of peft `task`, or a model whose
    architecture ends with `architecture`. `what` names it in the message ("a reward model")."""
    if src.adapter_path:
        found = json.loads((Path(src.adapter_path) / "adapter_config.json").read_text()).get("task_type")
        if found != task:
            raise ModelError(f"{src.ref!r} is a {found or 'non-classification'} adapter, not {what}", hint=hint)
        return
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(src.path, revision=src.revision, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise ModelError(f"cannot read the config of {src.ref!r}: {exc}", hint="check the model reference") from None
    architectures = config.architectures or []
    if not any(a.endswith(architecture) for a in architectures):
        raise ModelError(f"{src.ref!r} is not {what} (architecture: {', '.join(architectures) or 'unknown'})",
                         hint=hint)
    if config.num_labels != 1:
        raise ModelError(f"{src.ref!r} has {config.num_labels} outputs; {what} has one", hint=hint)


class RewardModelScorer:
    """A reward model loaded once, scoring (prompt, completion) pairs as `llmpost rm` trained it.

    `ref` is an `llmpost rm` artifact (NAME, NAME@vN), a local directory or a hub id;
    `.artifact` is the store artifact (None for a plain directory), for lineage.
    On a GPU the model runs there, in bfloat16 when supported.
    """

    model_kind = "seqcls"  # load_model's kind
    check = staticmethod(check_reward_model)  # raises ModelError unless the model is of this kind

    def __init__(self, ref: str, store, *, qlora: bool = False, batch_size: int = 32,
                 trust_remote_code: bool = False):
        import torch

        from llmpost.models.load import load_model, load_tokenizer, resolve_model

        self.source = resolve_model(ref, store)
        self.check(self.source, trust_remote_code)
        self.artifact = self.source.artifact
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(self.source, trust_remote_code)
        cuda = torch.cuda.is_available()
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
        self.model = load_model(self.source, kind=self.model_kind, qlora=qlora, trust_remote_code=trust_remote_code,
                                dtype=dtype)
        if cuda and not qlora:  # a 4-bit model is already placed
            self.model.to("cuda")
        self.model.eval()

    def score(self, prompts: list[list[dict]], completions: list[str]) -> list[float]:
        """One reward per (prompt messages, completion text), in order."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        sequences = [reward_input_ids(self.tokenizer, p, c) for p, c in zip(prompts, completions, strict=True)]
        return score_sequences(self.model, sequences, self.batch_size)


# --- scoring a file (`llmpost score`) -----------------------------------------------------

PREFERENCE_KEYS = ("chosen", "rejected", "responses", "completions")


def score_rows(scorer: RewardModelScorer, rows: list[dict], source: str) -> tuple[list[dict], dict | None]:
    """Score every response in `rows`; return the rows with scores added, and a report for preference data.

    Preference rows (pairs, rankings, UltraFeedback) get `scores`: one per response,
    in the row's response order (chosen then rejected for a pair); the report is
    `preference_report` over them. Any SFT/prompt+completion row gets `score`.
    """
    if any(k in rows[0] for k in PREFERENCE_KEYS):
        return _score_preference_rows(scorer, rows, source)
    from llmpost.data.formats import completion_text, to_sft

    examples = to_sft([with_completion(r) for r in rows], source)
    scores = scorer.score([e["prompt"] for e in examples], [completion_text(e["completion"]) for e in examples])
    return [{**row, "score": s} for row, s in zip(rows, scores, strict=True)], None


def with_completion(row: dict) -> dict:
    """`prompt` + `response` (a common spelling) read as `prompt` + `completion`."""
    if "completion" not in row and "prompt" in row and "response" in row:
        return {**row, "completion": row["response"]}
    return row


def _score_preference_rows(scorer, rows: list[dict], source: str) -> tuple[list[dict], dict]:
    from llmpost.data.preferences import rankings_to_pairs, to_rankings

    rankings = to_rankings(rows, source)
    scores = scorer.score([r.prompt for r in rankings for _ in r.responses], [t for r in rankings for t in r.responses])
    out, by_text, start = [], {}, 0
    for row, ranking in zip(rows, rankings, strict=True):
        row_scores = scores[start : start + len(ranking.responses)]
        out.append({**row, "scores": row_scores})
        key = json.dumps(ranking.prompt, sort_keys=True)
        by_text.update({(key, t): s for t, s in zip(ranking.responses, row_scores, strict=True)})
        start += len(ranking.responses)
    groups = group_by_prompt(rankings_to_pairs(rankings))
    rewards = [[by_text[json.dumps(g.prompt, sort_keys=True), t] for t in g.responses] for g in groups]
    return out, preference_report(groups, rewards)


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its samples: what a table or a manifest shows."""
    return {k: v for k, v in report.items() if k != "samples"}
