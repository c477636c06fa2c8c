"""The built-in arithmetic task: deterministic, disjoint splits, honest rankings."""

from __future__ import annotations

from llmpost.data.builtin import CARELESS_RATE, load_builtin, problems
from llmpost.evaluation.answers import extract_answer, is_correct


def test_generation_is_deterministic():
    assert load_builtin("arith-sft", "train") == load_builtin("arith-sft", "train")


def test_train_and_test_share_no_question():
    train = {r["prompt"] for r in load_builtin("arith-prompts", "train")}
    test = {r["prompt"] for r in load_builtin("arith-prompts", "test")}
    assert len(test) == 1000 and not train & test


def test_reference_answers_are_right():
    for row in load_builtin("arith-sft", "test"):
        question, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        a, b = [int(t) for t in question.replace("?", " ").replace(".", " ").split() if t.isdigit()]
        assert int(extract_answer(answer)) in (a + b, a - b)


def test_sft_demonstrations_carry_the_careless_habit_only_where_documented():
    """Train demonstrations add in the careless template about CARELESS_RATE of the time; all else is right."""
    added = careless = 0
    for p, row in zip(problems("train"), load_builtin("arith-sft", "train"), strict=True):
        answer = row["messages"][1]["content"]
        if p["careless"] and answer.startswith(f"{p['a']}+{p['b']}=") and p["op"] == "-":
            added += 1
        else:
            assert is_correct(answer, str(p["result"])), (p, answer)
        careless += p["careless"]
    assert careless > 300 and abs(added / careless - CARELESS_RATE) < 0.07
    for p, row in zip(problems("test"), load_builtin("arith-sft", "test"), strict=True):
        assert is_correct(row["messages"][1]["content"], str(p["result"]))


def test_rankings_offer_the_other_operation_as_a_wrong_answer():
    """Wherever the other operation gives another non-negative number (not for b = 0 or a < b in sums)."""
    for p, row in zip(problems("train"), load_builtin("arith-rankings", "train"), strict=True):
        flipped = [r for r in row["responses"][1:] if ("+" in r) != (p["op"] == "+")]
        possible = p["b"] > 0 and (p["op"] == "-" or p["a"] >= p["b"])
        assert len(flipped) == possible, (p, row["responses"])


def test_rankings_put_the_right_answer_first_then_by_distance():
    for row in load_builtin("arith-rankings", "test"):
        truth = int(row["answer"])
        got = [int(extract_answer(r)) for r in row["responses"]]
        assert got[0] == truth and len(set(got)) == 4
        distances = [abs(g - truth) for g in got]
        assert distances == sorted(distances)


def test_pairs_and_judge_rows_are_consistent():
    for row in load_builtin("arith-pairs", "test"):
        assert is_correct(row["chosen"], row["answer"]) and not is_correct(row["rejected"], row["answer"])
    rows = load_builtin("arith-judge", "train")
    assert len(rows) == 3 * len(load_builtin("arith-prompts", "train"))  # each problem three times
    replies = [r["messages"][1]["content"].splitlines() for r in rows]
    verdicts = [lines[-1] for lines in replies]
    assert verdicts.count("A") == verdicts.count("B") == verdicts.count("neither") == len(rows) // 3
    for work, check_a, check_b, verdict in replies:  # the sum, a check of each answer, the side that holds the sum
        result = int(work.split("=")[1])
        for check in (check_a, check_b):  # "A 20-21=-1 no": the answer's number less the sum, zero or not
            side, subtraction, said = check.split(" ")
            given, difference = subtraction.split("=")
            number, subtracted = given.split("-")
            assert int(subtracted) == result and int(number) - result == int(difference)
            assert said == ("yes" if int(difference) == 0 else "no")
        right = [line[0] for line in (check_a, check_b) if line.endswith("yes")]
        assert right == ([] if verdict == "neither" else [verdict])


def test_judge_rows_show_each_right_wrong_pair_in_both_orders():
    """A judge must not learn that the right answer tends to sit on one side."""
    rows = load_builtin("arith-judge", "test")
    for right_first, right_second in zip(rows[0::3], rows[1::3], strict=True):
        first, second = right_first["messages"][0]["content"], right_second["messages"][0]["content"]
        answers = [text.split("Answer B: ")[0].split("Answer A: ")[1].strip() for text in (first, second)]
        others = [text.split("Answer B: ")[1].split("\nWhich")[0].strip() for text in (first, second)]
        assert answers == others[::-1], (first, second)
        assert right_first["messages"][1]["content"][-1] == "A" and right_second["messages"][1]["content"][-1] == "B"


def test_answer_extraction_formats():
    assert extract_answer("so 3+4=7\n#### 7") == "7"
    assert extract_answer("the answer is \\boxed{12}") == "12"
    assert extract_answer("<think>x</think><answer> 5 </answer>") == "5"
    assert extract_answer("first 3 then 1,024") == "1,024"
    assert extract_answer("no number") is None
    assert is_correct("#### 1,024", "1024") and not is_correct("#### 7", "8")
