"""Judge prompts, verdict parsing and the judge settings / reward-spec syntax."""

from __future__ import annotations

import pytest

from llmpost.config.resolve import resolve
from llmpost.data.builtin import JUDGE_TEMPLATE, load_builtin
from llmpost.errors import ConfigError
from llmpost.judges.prompts import pairwise_messages, parse_score, parse_verdict, pointwise_messages
from llmpost.judges.settings import JudgeSettings, judge_target_flags, parse_judge_spec, redact_url

PROMPT = [{"role": "user", "content": "Ann has 3 pens and gets 4 more. How many pens does Ann have?"}]


@pytest.mark.parametrize("reply, verdict", [
    ("A", "A"), ("B", "B"), (" b ", "B"), ("(A)", "A"), ("**B**", "B"), ("A.", "A"), ("[[B]]", "B"),
    ("[[C]]", "tie"), ("My final verdict is [[A]].", "A"),
    ("Answer B is correct.", "B"), ("Answer A is better because it adds correctly.", "A"),
    ("The correct answer is B", "B"), ("The better response is Answer A.", "A"), ("Verdict: B", "B"),
    ("Final answer: (A)", "A"), ("I choose B.", "B"), ("B is correct: 3+4=7.", "B"),
    ("A\nBecause 3+4=7.", "A"), ("B: it adds up", "B"), ("3+4=7, so the right one is\nB", "B"),
    ("Answer A is wrong and answer B is correct.", "B"),
    ("It's a tie.", "tie"), ("Both answers are equally correct.", "tie"), ("Neither is right.", "tie"),
])
def test_parse_verdict_reads_terse_and_long_replies(reply, verdict):
    assert parse_verdict(reply) == verdict


@pytest.mark.parametrize("reply", [
    "", "   ", None, "7", "3+4=7\n#### 7", "the moon is made of cheese",
    "Answer A is correct. Answer B is correct.",  # names both: not guessed at
    "[[A]] or maybe [[B]]",
    "A correct answer needs the sum.",  # "A" here is an article
])
def test_parse_verdict_refuses_to_guess(reply):
    assert parse_verdict(reply) is None


@pytest.mark.parametrize("reply, score", [
    ("10", 1.0), ("1", 0.0), ("Rating: 7", 6 / 9), ("[[4]]", 3 / 9), ("I'd give it 8/10.", 7 / 9),
    ("eleven", None), ("42", None), ("", None),
])
def test_parse_score_scales_one_to_ten(reply, score):
    got = parse_score(reply)
    assert got == pytest.approx(score) if score is not None else got is None


def test_default_template_is_the_builtin_judge_prompt():
    """The tiny judge trained on builtin:arith-judge sees exactly what it was trained on."""
    settings = JudgeSettings(model="judge-model")
    row = load_builtin("arith-judge", "test")[0]["messages"][0]["content"]
    question = row.split("\n")[0].removeprefix("Question: ")
    a = row.split("Answer A: ")[1].split("\nAnswer B: ")[0]
    b = row.split("Answer B: ")[1].split("\nWhich answer")[0]
    messages = pairwise_messages(settings, [{"role": "user", "content": question}], a, b)
    assert settings.template == JUDGE_TEMPLATE
    assert messages == [{"role": "user", "content": row}]


def test_answers_are_substituted_once():
    """An answer that itself contains "{b}" is not substituted again."""
    messages = pairwise_messages(JudgeSettings(model="j"), PROMPT, "the text {b}", "7")
    assert "Answer A: the text {b}\nAnswer B: 7" in messages[-1]["content"]


def test_principles_go_into_the_template_or_the_system_message():
    in_template = JudgeSettings(model="j", principles=["Be correct", "Be brief"],
                                template="Rules:\n{principles}\nQ: {question}\n1: {a}\n2: {b}\nA or B?")
    messages = pairwise_messages(in_template, PROMPT, "7", "8")
    assert messages == [{"role": "user", "content": "Rules:\n1. Be correct\n2. Be brief\nQ: " + PROMPT[0]["content"]
                         + "\n1: 7\n2: 8\nA or B?"}]
    in_system = JudgeSettings(model="j", system="You are a strict grader.", principles=["Be correct"])
    messages = pairwise_messages(in_system, PROMPT, "7", "8")
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("You are a strict grader.")
    assert "1. Be correct" in messages[0]["content"]
    assert pointwise_messages(in_system, PROMPT, "7")[-1]["content"].startswith("Question: Ann has")


def test_multi_turn_prompts_are_shown_as_a_transcript():
    prompt = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"},
              {"role": "assistant", "content": "hello"}, {"role": "user", "content": "2+2?"}]
    content = pairwise_messages(JudgeSettings(model="j"), prompt, "4", "5")[-1]["content"]
    assert content.startswith("Question: User: hi\nAssistant: hello\nUser: 2+2?\nAnswer A: 4")


def test_bad_templates_and_urls_are_config_errors_listing_every_problem():
    with pytest.raises(ConfigError) as err:
        resolve(JudgeSettings, [{"template": "{question} {a} {answr}", "base_url": "127.0.0.1:8000",
                                 "score_template": "no placeholders"}])
    text = str(err.value)
    assert "template" in text and "unknown placeholder {answr}" in text and "missing placeholder {b}" in text
    assert "base_url" in text and "http://" in text
    assert "score_template" in text and "{answer}" in text


def test_an_api_key_pasted_as_api_key_env_is_rejected_without_echoing_it():
    secret = "sk-live-abc123-do-not-print"
    with pytest.raises(ConfigError) as err:
        resolve(JudgeSettings, [{"base_url": "http://127.0.0.1:1/v1", "api_key_env": secret}])
    assert "api_key_env" in str(err.value) and "NAME of an environment variable" in str(err.value)
    assert secret not in str(err.value)


def test_judge_flag_picks_the_backend():
    assert judge_target_flags("judge-model") == {"judge.model": "judge-model"}
    assert judge_target_flags("http://127.0.0.1:8000/v1") == {"judge.base_url": "http://127.0.0.1:8000/v1"}
    assert judge_target_flags(None) == {}


def test_reward_spec_syntax():
    local = parse_judge_spec("judge:judge-model?max_new_tokens=4&principles=Be correct;Be brief")
    assert (local.backend, local.model, local.max_new_tokens) == ("local", "judge-model", 4)
    assert local.principles == ["Be correct", "Be brief"]
    remote = parse_judge_spec("judge:https://api.example.com/v1?model=gpt-x&api_key_env=MY_KEY&concurrency=8")
    assert (remote.backend, remote.base_url, remote.model) == ("http", "https://api.example.com/v1", "gpt-x")
    assert (remote.api_key_env, remote.concurrency) == ("MY_KEY", 8)
    with pytest.raises(ConfigError) as err:
        parse_judge_spec("judge:judge-model?max_new_token=4")
    assert "did you mean `max_new_tokens`" in str(err.value)
    with pytest.raises(ConfigError):
        parse_judge_spec("judge:")


def test_reports_never_show_url_credentials():
    assert redact_url("https://user:pw@api.example.com:8443/v1?key=zzz") == "https://api.example.com:8443/v1"
    settings = JudgeSettings(base_url="https://user:pw@api.example.com/v1", model="m")
    assert "pw" not in settings.describe()


def test_every_builtin_judge_reply_parses_to_its_verdict():
    """The built-in judge's worked replies end in A, B or "neither"; the parser must read each as meant."""
    meant = {"A": "A", "B": "B", "neither": "tie"}
    for row in load_builtin("arith-judge", "test"):
        reply = row["messages"][1]["content"]
        assert parse_verdict(reply) == meant[reply.splitlines()[-1]], reply
