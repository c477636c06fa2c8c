"""`llmpost eval --best-of N --rank-by ...` end to end on the tiny model: a PRM, an RM and the vote on the same samples.

The reward models are barely trained (an RM of 5 steps, a PRM with a fresh score head): what is
checked is what a user reads off the report and the items file, not how good the rankers are.
Artifact names are this module's own, since the session's SFT store is shared with other modules.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import ok, run_cli

from llmpost.artifacts.store import Store

N, PROBLEMS = 4, 8
STEPS_DATA = ("--data", "builtin:arith-steps-prompts:test", "--set", f"max_samples={PROBLEMS}")


def make_prm(directory):
    """A process reward model as a plain local directory: the tiny model with a one-output token-classification head."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from llmpost.models.tiny import tiny_path

    AutoModelForTokenClassification.from_pretrained(tiny_path(), num_labels=1).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_path()).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def best_of_run(sft_store, tmp_path_factory):
    """`sft` evaluated with best-of-4 ranked by a PRM, an RM and the vote: (store, rankers, the CLI's output)."""
    ok(run_cli("rm", "--model", "sft", "--out", "best-of-rm", "--max-steps", "5", "--set", "eval.max_samples=8",
               store=sft_store))
    prm = make_prm(tmp_path_factory.mktemp("best-of") / "prm")
    rankers = [f"prm:{prm}:agg=min", "rm:best-of-rm", "vote"]
    proc = ok(run_cli("eval", "sft", *STEPS_DATA, "--best-of", str(N), "--rank-by", ",".join(rankers),
                      "--out", "best-of", store=sft_store))
    return sft_store, rankers, proc


def items(store, ref: str) -> list[dict]:
    path = Store(store).resolve(ref).path / "best_of_items.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_report_has_every_ranker_below_the_oracle(best_of_run):
    store, rankers, proc = best_of_run
    artifact = Store(store).resolve("best-of")
    best = json.loads((artifact.path / "eval.json").read_text())["best_of"]
    assert best["n"] == N and best["n_eval"] == PROBLEMS and best["rankers"] == rankers
    oracle = best["oracle"]["exact_match"]
    for ranker in rankers:
        rate = best["ranked"][ranker]["exact_match"]
        assert 0 <= rate <= oracle, (ranker, rate, oracle)
        low, high = best["ranked"][ranker]["exact_match_ci"]
        assert low <= rate <= high
    pairs = [(d["ranker"], d["against"]) for d in best["differences"]]
    assert pairs == [*((r, "greedy") for r in rankers), (rankers[0], rankers[1]), (rankers[1], rankers[2])]
    metrics = artifact.manifest["metrics"]
    assert metrics["best_of_n"] == N and metrics["best_of_oracle"] == oracle
    assert all(metrics[f"best_of_{r}"] == best["ranked"][r]["exact_match"] for r in rankers)
    assert "best-of-rm" in {p["ref"].split("@")[0] for p in artifact.manifest["parents"]}  # the RM is in the lineage
    assert "best_of_vote" in proc.stdout and "oracle (any of 4)" in proc.stderr  # the tables


def test_items_file_holds_every_sample_and_the_vote_picks_the_majority(best_of_run):
    store, rankers, _ = best_of_run
    lines = items(store, "best-of")
    assert len(lines) == PROBLEMS
    for line in lines:
        samples = line["samples"]
        assert len(samples) == N
        assert all(set(s["scores"]) == set(rankers) for s in samples)
        assert line["oracle"] == any(s["correct"] for s in samples)
        for ranker in rankers:
            assert line["picked_correct"][ranker] == samples[line["picks"][ranker]]["correct"]
        answers = [s["extracted"] for s in samples]
        votes = Counter(a for a in answers if a is not None)
        if votes:
            top = max(votes.values())
            first_majority = next(k for k, a in enumerate(answers) if votes.get(a) == top)
            assert line["picks"]["vote"] == first_majority, answers


def test_the_same_seed_samples_the_same_answers_whatever_the_rankers(best_of_run):
    store, _, _ = best_of_run
    ok(run_cli("eval", "sft", *STEPS_DATA, "--best-of", str(N), "--out", "best-of-vote", store=store))
    again = items(store, "best-of-vote")
    assert [[s["output"] for s in line["samples"]] for line in again] == \
        [[s["output"] for s in line["samples"]] for line in items(store, "best-of")]
    assert all(set(line["picks"]) == {"vote"} for line in again)  # vote is the default ranker


def fails_with(proc, *needles: str) -> None:
    text = proc.stderr + proc.stdout
    assert proc.returncode == 2, f"exit {proc.returncode}: {text[-2000:]}"
    assert "Traceback" not in text, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text[-2000:]}"


def test_a_bad_ranker_exits_2_saying_what_is_accepted(best_of_run):
    store, _, _ = best_of_run
    bad = ("--out", "best-of-bad")
    fails_with(run_cli("eval", "sft", *bad, "--best-of", "2", "--rank-by", "votes,rm:", store=store),
               "unknown ranker 'votes'", "did you mean `vote`", "'rm:' needs a model", "rm:REF", "prm:REF")
    fails_with(run_cli("eval", "sft", *bad, "--rank-by", "vote", store=store), "set best_of too (--best-of N)")
    fails_with(run_cli("eval", "sft", *bad, "--best-of", "2", "--rank-by", "prm:best-of-rm", store=store),
               "'best-of-rm' is not a process reward model", "llmpost prm")
    assert Store(store).try_resolve("best-of-bad") is None  # nothing written
