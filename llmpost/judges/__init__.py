"""LLM judges: who compares two answers, how it is asked, and how verdicts become preferences.

    settings.py   JudgeSettings: the `judge:` config block and the `judge:` reward spec
    prompts.py    pairwise and pointwise templates, principles (rubric), verdict parsing
    reply.py      the backend interface (`Backend`) and what it returns (`Reply`)
    backend.py    `Judge`: a backend behind the cache, token accounting; `open_judge()`
    local.py      a transformers model (artifact ref, path or hub id; 4-bit allowed)
    http.py       any OpenAI-compatible chat-completions endpoint (timeouts, retries, concurrency)
    cache.py      the on-disk judgment cache: asking the same thing twice costs nothing
    compare.py    asking for a pair in both orders and turning the two verdicts into one `PairVerdict`
    aggregate.py  verdicts -> rankings (Copeland) and pairs; the quality report

Training stages never import this package at module level: backends import torch
or open sockets only when a judgment is asked for.
"""
