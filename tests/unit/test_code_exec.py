"""The `code_exec` sandbox: right code scores 1, wrong 0, and nothing the code does escapes or hurts the caller."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from llmpost.rewards.code_exec import Limits, as_tests, extract_code, run_tests
from llmpost.rewards.registry import CombinedReward

FAST = Limits(cpu_seconds=1, wall_seconds=3.0, memory_mb=512)
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]


def test_correct_code_scores_one_and_wrong_code_zero():
    assert run_tests("def add(a, b):\n    return a + b", ADD_TESTS, FAST).score == 1.0
    wrong = run_tests("def add(a, b):\n    return a * b", ADD_TESTS, FAST)
    assert wrong.score == 0.0 and wrong.status == "failed"
    half = run_tests("def add(a, b):\n    return 3", ADD_TESTS, FAST)
    assert half.score == 0.5  # one test of two


def test_code_is_taken_from_the_last_fenced_block():
    completion = "First try:\n```python\ndef add(a, b): return 0\n```\nBetter:\n```python\ndef add(a, b):\n    return a + b\n```"
    assert extract_code(completion) == "def add(a, b):\n    return a + b\n"
    assert extract_code("def f(): pass") == "def f(): pass"
    assert run_tests(extract_code(completion), ADD_TESTS, FAST).score == 1.0


def test_humaneval_style_check_is_called_on_the_entry_point():
    tests = as_tests("def check(candidate):\n    assert candidate(2, 2) == 4", entry_point="add")
    assert run_tests("def add(a, b):\n    return a + b", tests, FAST).score == 1.0
    assert run_tests("def add(a, b):\n    return a - b", tests, FAST).score == 0.0


@pytest.mark.parametrize("code, limit", [
    ("while True:\n    pass", "CPU"),  # burns CPU: RLIMIT_CPU
    ("import time\ntime.sleep(600)", "wall"),  # sleeps: the wall-clock timeout
])
def test_an_endless_program_is_killed_within_its_limit(code, limit):
    start = time.monotonic()
    result = run_tests(code, ["assert True"], FAST)
    elapsed = time.monotonic() - start
    assert result.score == 0.0 and result.status in ("killed", "timeout")
    assert elapsed < FAST.wall_seconds + 2.0, f"{limit} limit took {elapsed:.1f}s"


def serve_once(listener: socket.socket, received: list) -> None:
    listener.settimeout(5)
    try:
        conn, _ = listener.accept()
        received.append(conn.recv(100))
        conn.close()
    except OSError:
        pass


SOCKET_CODE = """
import socket
def reach(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(b"leak")
    s.close()
    return True
"""


def test_opening_a_socket_fails_inside_the_sandbox():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    received: list = []
    server = threading.Thread(target=serve_once, args=(listener, received))
    server.start()
    try:
        result = run_tests(SOCKET_CODE, [f"assert reach({port})"], FAST)
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the waiting accept()
        server.join()
        listener.close()
    assert result.score == 0.0
    assert received == []  # nothing reached the server
    assert "socket" in result.detail or "Network" in result.detail or "refused" in result.detail


def test_the_same_socket_code_works_outside_the_sandbox():
    """The control for the test above: the code does reach a server when nothing stops it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received: list = []
    server = threading.Thread(target=serve_once, args=(listener, received))
    server.start()
    code = SOCKET_CODE + f"\nassert reach({listener.getsockname()[1]})"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=20)
    server.join()
    listener.close()
    assert received == [b"leak"]


def test_writes_outside_the_temp_dir_fail_and_inside_work(tmp_path):
    outside = tmp_path / "escaped.txt"
    code = f"""
import os, pathlib, shutil
def write_outside():
    open({str(outside)!r}, "w").write("x")
    return True
def append_outside():
    with open({str(outside)!r}, "a") as f:
        f.write("x")
    return True
def low_level_outside():
    os.close(os.open({str(outside)!r}, os.O_WRONLY | os.O_CREAT))
    return True
def remove_outside():
    os.remove({str(tmp_path / "keep.txt")!r})
    return True
def write_inside():
    pathlib.Path("scratch.txt").write_text("fine")
    os.mkdir("sub")
    shutil.rmtree("sub")
    return open("scratch.txt").read() == "fine"
"""
    (tmp_path / "keep.txt").write_text("keep")
    tests = ["assert write_outside()", "assert append_outside()", "assert low_level_outside()",
             "assert remove_outside()", "assert write_inside()"]
    result = run_tests(code, tests, FAST)
    assert result.passed == 1  # only write_inside
    assert not outside.exists() and (tmp_path / "keep.txt").read_text() == "keep"


def test_no_secrets_in_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    assert run_tests("import os", ["assert 'OPENAI_API_KEY' not in os.environ"], FAST).score == 1.0


@pytest.mark.parametrize("code, tests", [
    ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", ["assert True"]),  # kill the trainer
    ("import os\nos._exit(0)", ["assert True"]),  # exit 'successfully' before the tests run
    ("import sys\nsys.exit(0)", ["assert True"]),
    ("print('\\n' + '0' * 32 + ' 1 ')", ["assert False"]),  # print a fake result line
    ("x = bytearray(4 * 1024 ** 3)", ["assert True"]),  # memory
    ("while True:\n    print('x' * 100000)", ["assert True"]),  # flood the output
    ("import subprocess\nsubprocess.run(['sh', '-c', 'true'])", ["assert True"]),  # a child outside the hook
    ("import ctypes\nctypes.CDLL(None).system(b'true')", ["assert True"]),  # native code around the hook
])
def test_hostile_code_scores_zero_and_leaves_the_caller_alive(code, tests):
    result = run_tests(code, tests, FAST)
    assert result.score == 0.0, result


def test_the_reward_survives_a_batch_of_everything():
    """What a trainer sees: one call, one score per completion, the calling process unharmed."""
    completions = [
        "```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a - b\n```",
        "```python\nwhile True:\n    pass\n```",
        "```python\nimport os\nos.kill(os.getppid(), 9)\n```",
        "```python\nimport socket\nsocket.socket().connect(('1.1.1.1', 80))\n```",
        "this is not code at all",
    ]
    rows = [{"tests": ADD_TESTS} for _ in completions]
    prompts = [[{"role": "user", "content": "Write add(a, b)."}]] * len(completions)
    reward = CombinedReward(["code_exec:cpu=1,wall=3"], store=None)
    total, per = reward(prompts, completions, rows)
    assert per["code_exec"] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert total == per["code_exec"]
    assert os.getpid() > 0  # still here
