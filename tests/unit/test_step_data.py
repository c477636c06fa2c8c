"""Step-labelled data: the built-in step task and the public shapes a process reward model reads."""

from __future__ import annotations

import re

import pytest

from llmpost.data import builtin_steps
from llmpost.data.builtin import load_builtin
from llmpost.data.steps import to_step_rows
from llmpost.errors import DataError
from llmpost.rewards.process import aggregate, split_steps
from llmpost.rewards.step_report import step_report

EQUATION = re.compile(r"^(-?\d+)([+-])(\d+)(?: = |=)(-?\d+)$")


def step_is_right(step: str, previous: int | None, start: int) -> tuple[bool, int | None]:
    """Whether an equation step computes right from the number before it; the number it gives."""
    a, op, b, result = EQUATION.match(step).groups()
    a, b, result = int(a), int(b), int(result)
    expected_start = start if previous is None else previous
    return a == expected_start and result == (a + b if op == "+" else a - b), result


@pytest.mark.parametrize("split", ["train", "test"])
def test_builtin_step_labels_mark_the_first_wrong_step_and_everything_after(split):
    rows = load_builtin("arith-steps", split)
    assert len({r["prompt"] for r in rows}) == len(rows)
    with_error = 0
    for row in rows:
        start = int(re.search(r"has (\d+) ", row["prompt"]).group(1))
        previous, first_wrong = None, None
        for i, step in enumerate(row["completions"][:-1]):
            right, previous = step_is_right(step, previous, start)
            if not right and first_wrong is None:
                first_wrong = i
        final = int(row["completions"][-1].removeprefix("#### "))
        if first_wrong is None and final != previous:
            first_wrong = len(row["completions"]) - 1
        # An arithmetic check cannot see a misread operation: it is right arithmetic on the wrong sum.
        truth_reached = final == int(row["answer"])
        assert all(row["labels"]) == truth_reached
        first_label = next((i for i, good in enumerate(row["labels"]) if not good), None)
        if first_wrong is not None:
            assert first_label == first_wrong
        if first_label is not None:
            with_error += 1
            assert not any(row["labels"][first_label:])
    assert 0.5 < with_error / len(rows) < 0.8


def test_builtin_step_splits_share_no_problem_and_every_shape_is_consistent():
    train = {r["prompt"] for r in load_builtin("arith-steps-prompts", "train")}
    test_rows = load_builtin("arith-steps-prompts", "test")
    assert not train & {r["prompt"] for r in test_rows}
    # The reward models train on more problems than SFT and PPO (see REWARD_MODEL_PROBLEMS), the same for both.
    reward_train = {r["prompt"] for r in load_builtin("arith-steps", "train")}
    assert train < reward_train and len(reward_train) > 9 * len(train)
    assert not reward_train & {r["prompt"] for r in test_rows}
    assert reward_train == {r["prompt"] for r in load_builtin("arith-steps-rankings", "train")}
    rankings = load_builtin("arith-steps-rankings", "test")
    for prompt_row, ranking in zip(test_rows, rankings, strict=True):
        best, *wrong = ranking["responses"]
        assert best.endswith(f"#### {prompt_row['answer']}")
        assert all(not w.endswith(f"#### {prompt_row['answer']}") for w in wrong)
    demonstrations = [r["messages"][1]["content"] for r in load_builtin("arith-steps-sft", "train")]
    answers = [r["answer"] for r in load_builtin("arith-steps-prompts", "train")]
    careless = sum(not d.endswith(f"#### {a}") for d, a in zip(demonstrations, answers, strict=True))
    assert 0.05 < careless / len(answers) < 0.4  # the careless writer's habit, not noise everywhere


def test_on_a_loses_problem_the_careless_solution_is_the_likeliest_text_but_not_the_likeliest_answer():
    """Greedy decoding follows the likeliest text, a majority vote the likeliest answer: the two must differ."""
    kinds = {"careless": 0, "compact": 0, "spaced": 0}
    for p, row in zip(builtin_steps.problems("train"), load_builtin("arith-steps-sft", "train"), strict=True):
        if "loses" not in p["question"]:
            continue
        steps = row["messages"][1]["content"].split("\n")
        if steps == builtin_steps.solve(p):
            kinds["compact"] += 1
        elif steps == builtin_steps.solve(p, spaced=True):
            kinds["spaced"] += 1
        else:
            assert steps == builtin_steps.solve(p, careless=True)
            kinds["careless"] += 1
    assert kinds["careless"] > max(kinds["compact"], kinds["spaced"]) * 1.2
    assert kinds["compact"] + kinds["spaced"] > kinds["careless"] * 1.2
    assert sum(kinds.values()) > 900


def test_the_reward_models_data_write_right_and_wrong_solutions_in_both_hands():
    steps = load_builtin("arith-steps", "train")
    rankings = load_builtin("arith-steps-rankings", "train")
    for name, solutions in {"arith-steps right": [r["completions"] for r in steps if all(r["labels"])],
                            "arith-steps wrong": [r["completions"] for r in steps if not all(r["labels"])],
                            "arith-steps-rankings right": [r["responses"][0].split("\n") for r in rankings],
                            "arith-steps-rankings wrong": [r["responses"][1].split("\n") for r in rankings]}.items():
        spaced = sum(" = " in solution[0] for solution in solutions)
        assert 0.45 < spaced / len(solutions) < 0.55, name


def test_stepwise_math_shepherd_and_prm800k_rows_are_read_as_published():
    stepwise = {"prompt": "What is 2+3-1?", "completions": ["2+3=5", "5-1=3"], "labels": [True, False]}
    shepherd = {
        "input": "What is 2+3-1? Step 1: 2+3=5 ки\nStep 2: 5-1=3 ки",
        "label": "What is 2+3-1? Step 1: 2+3=5 +\nStep 2: 5-1=3 -",
        "task": "GSM8K",
    }
    prm800k = {
        "question": {"problem": "What is 2+3-1?", "ground_truth_answer": "4"},
        "label": {"steps": [
            {"completions": [{"text": "2+3=5", "rating": 1}], "human_completion": None, "chosen_completion": 0},
            {"completions": [{"text": "5-1=4", "rating": 0}, {"text": "5-1=3", "rating": -1}],
             "human_completion": None, "chosen_completion": None},
            {"completions": [{"text": "never reached", "rating": 1}], "chosen_completion": 0},
        ], "finish_reason": "found_error"},
    }
    a, b, c = to_step_rows([stepwise, shepherd, prm800k], "rows.jsonl")
    assert a.steps == ["2+3=5", "5-1=3"] and a.labels == [1.0, 0.0] and a.first_error == 1
    assert b.prompt == [{"role": "user", "content": "What is 2+3-1?"}]
    assert b.steps == ["Step 1: 2+3=5", "Step 2: 5-1=3"] and b.labels == [1.0, 0.0]
    # PRM800K: the labeller stopped at the step with no chosen completion; its -1 completion is the error.
    assert c.steps == ["2+3=5", "5-1=3"] and c.labels == [1.0, 0.0]


@pytest.mark.parametrize(("row", "message"), [
    ({"prompt": "q", "completions": ["a", "b"], "labels": [True]}, "one label per step (2 steps), got 1 labels"),
    ({"prompt": "q", "completions": ["a"], "labels": ["yes"]}, "label 1 must be a boolean or a number in [0, 1]"),
    ({"input": "q Step 1: a ки", "label": "q Step 1: a ?"}, "expected '+' or '-'"),
    ({"text": "q"}, "fits no step-labelled format (columns found: text)"),
])
def test_a_row_in_the_wrong_shape_is_a_data_error_naming_the_formats(row, message):
    with pytest.raises(DataError) as caught:
        to_step_rows([row], "bad.jsonl")
    assert message in caught.value.message and "bad.jsonl: row 1" in caught.value.message
    assert "Math-Shepherd" in caught.value.hint and "PRM800K" in caught.value.hint


def test_step_report_reads_accuracy_localisation_and_solutions():
    rows = to_step_rows([
        {"prompt": "q1", "completions": ["s1", "s2", "s3"], "labels": [True, False, False]},
        {"prompt": "q2", "completions": ["s1", "s2"], "labels": [True, True]},
    ], "rows")
    # q1: flags step 3, not step 2 (late); q2: flags nothing (right)
    report = step_report(rows, [[0.9, 0.6, 0.2], [0.8, 0.7]], before=[[0.4, 0.4, 0.4], [0.4, 0.4]])
    assert report["step_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert report["first_error_accuracy"] == 0.0
    assert report["solution_accuracy"] == 1.0
    assert report["step_accuracy_before"] == pytest.approx((2 / 3 + 0) / 2)
    assert report["step_accuracy_delta"] == pytest.approx(0.5)
    assert report["good_share"] == pytest.approx(3 / 5)


def test_steps_are_lines_and_aggregation_follows_its_name():
    assert split_steps("7+5=12\n\n12-3=9 \n#### 9") == ["7+5=12", "12-3=9", "#### 9"]
    scores = [0.9, 0.2, 0.8]
    assert aggregate(scores, "min") == 0.2 and aggregate(scores, "last") == 0.8
    assert aggregate(scores, "prod") == pytest.approx(0.144) and aggregate(scores, "mean") == pytest.approx(19 / 30)
    assert aggregate([], "min") == 0.0
