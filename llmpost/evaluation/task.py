"""The held-out task evaluation every stage reports: exact match of generated answers."""

from __future__ import annotations

from llmpost.evaluation.answers import extract_answer, is_correct
from llmpost.evaluation.generation import generate


def exact_match(model, tokenizer, rows: list[dict], *, max_new_tokens: int = 32, batch_size: int = 64,
                keep_samples: int = 5) -> dict:
    """Greedy answers to `rows` ({"prompt": messages, "answer": str}) scored against the reference.

    Returns {"exact_match": fraction, "n": count, "samples": a few (prompt, output, answer)}.
    """
    rows = [r for r in rows if r.get("answer") is not None]
    if not rows:
        return {"exact_match": None, "n": 0, "samples": []}
    outputs = generate(model, tokenizer, [r["prompt"] for r in rows],
                       max_new_tokens=max_new_tokens, batch_size=batch_size)
    hits = [is_correct(out, r["answer"]) for out, r in zip(outputs, rows, strict=True)]
    samples = [{"prompt": r["prompt"][-1]["content"], "output": out, "extracted": extract_answer(out),
                "answer": r["answer"], "correct": hit}
               for r, out, hit in list(zip(rows, outputs, hits, strict=True))[:keep_samples]]
    return {"exact_match": sum(hits) / len(hits), "n": len(hits), "samples": samples}
