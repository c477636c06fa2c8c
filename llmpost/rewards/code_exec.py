"""The `code_exec` reward: run generated Python against a row's tests in a locked-down subprocess.

The code is the completion's last ```python fenced block (else the whole text). It
runs in a fresh interpreter, one per completion, with:

- CPU time (RLIMIT_CPU), address space (RLIMIT_AS) and file size (RLIMIT_FSIZE) limits,
  and a wall-clock timeout after which its whole process group is killed;
- no network: a fresh, empty network namespace (`unshare -rn`) where the kernel allows
  one, and always an audit hook that refuses to create or connect sockets;
- writes only inside its own temporary working directory (audit hook on open for
  writing, remove, rename, mkdir, chmod, ...); no child processes, signals or ctypes,
  which would step around the hook;
- an environment holding only PATH, HOME, TMPDIR and LANG, so no API key leaks in.

The score is the fraction of the row's tests that pass. `tests` is a list of snippets
(usually asserts) or one string; with an `entry_point` column, HumanEval-style
`check(candidate)` tests are called on it. A row without tests scores None.

This guards the trainer against accidents and against a policy that learns to game
its reward; it is not a security boundary for hostile code (use a container for that).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from llmpost.rewards.spec import parse_options

FENCED = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.S | re.I)
RESULT_TAIL_BYTES = 4096


@dataclass(frozen=True)
class Limits:
    """What one run of generated code may use."""

    cpu_seconds: int = 2  # CPU time; the kernel stops the process after it (SIGXCPU, then SIGKILL)
    wall_seconds: float = 5.0  # wall clock, catching sleeps and blocked reads that use no CPU
    memory_mb: int = 512  # address space
    output_kb: int = 1024  # largest file it may write, its captured stdout included


@dataclass
class ExecResult:
    """The outcome of one run: tests passed out of total, and why it ended."""

    passed: int
    total: int
    status: str  # ok | failed | error | timeout | killed | no-result
    detail: str = ""

    @property
    def score(self) -> float:
        return self.passed / self.total if self.total else 0.0


def extract_code(completion: str) -> str:
    """The last fenced code block of `completion`, or the whole completion when it has none."""
    blocks = FENCED.findall(completion)
    return blocks[-1] if blocks else completion


def as_tests(tests: object, entry_point: str | None = None) -> list[str]:
    """A row's tests as a list of snippets; `check(candidate)` tests get called on `entry_point`."""
    snippets = [tests] if isinstance(tests, str) else [str(t) for t in tests or []]
    if entry_point:
        snippets = [f"{s}\ncheck({entry_point})" if "def check(" in s else s for s in snippets]
    return snippets


def run_tests(code: str, tests: list[str], limits: Limits = Limits()) -> ExecResult:
    """Run `code`, then each test, in a sandboxed interpreter; never raises for anything the code does."""
    if not tests:
        return ExecResult(0, 0, "error", "no tests")
    nonce = secrets.token_hex(16)  # only the harness knows it, so printed text cannot fake a result
    params = {"code": code, "tests": tests, "nonce": nonce, "cpu": max(1, int(limits.cpu_seconds)),
              "memory": limits.memory_mb * 2**20, "fsize": limits.output_kb * 1024}
    work = Path(tempfile.mkdtemp(prefix="llmpost-code-"))
    try:
        sandbox = work / "sandbox"
        sandbox.mkdir()
        params["sandbox"] = str(sandbox.resolve())
        with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
            returncode, timed_out = run_sandboxed(f"PARAMS = {params!r}\n{HARNESS}", sandbox, out, err,
                                                  limits.wall_seconds)
        return read_result(work, nonce, len(tests), returncode, timed_out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_sandboxed(script: str, sandbox: Path, out, err, wall_seconds: float) -> tuple[int | None, bool]:
    """Run `script` (fed on stdin, so it is nowhere on disk) and kill its process group when done or late."""
    command = [*network_isolation(), sys.executable, "-I", "-B", "-"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(sandbox), "TMPDIR": str(sandbox),
           "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=sandbox, env=env,
                            start_new_session=True)
    timed_out = False
    try:
        proc.communicate(script.encode(), timeout=wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        kill_group(proc.pid)
        proc.wait()
    return proc.returncode, timed_out


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@cache
def network_isolation() -> tuple[str, ...]:
    """`unshare -rn` (an empty network namespace) when this kernel lets unprivileged users make one."""
    if shutil.which("unshare") is None:
        return ()
    try:
        ok = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ("unshare", "-rn") if ok else ()


def read_result(work: Path, nonce: str, total: int, returncode: int | None, timed_out: bool) -> ExecResult:
    stderr_tail = tail(work / "stderr")
    if timed_out:
        return ExecResult(0, total, "timeout", "wall-clock limit reached")
    for line in reversed(tail(work / "stdout").splitlines()):
        if line.startswith(nonce + " "):
            _, passed, detail = (line.split(" ", 2) + [""])[:3]
            passed = min(int(passed), total)
            status = "ok" if passed == total else ("error" if detail.startswith("solution") else "failed")
            return ExecResult(passed, total, status, detail)
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        why = {"SIGXCPU": "CPU-time limit reached", "SIGXFSZ": "output limit reached"}.get(name, name)
        return ExecResult(0, total, "killed", why)
    return ExecResult(0, total, "no-result", stderr_tail[-500:] or f"exit code {returncode}")


def tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - RESULT_TAIL_BYTES))
        return f.read().decode("utf-8", "replace")


def code_exec_reward(arg: str | None = None):
    """The `code_exec[:cpu=2,wall=5,memory_mb=512,workers=2]` reward: fraction of the row's tests passed."""
    options = parse_options(arg, {"cpu": int, "wall": float, "memory_mb": int, "workers": int}, "code_exec")
    limits = Limits(cpu_seconds=options.get("cpu", 2), wall_seconds=options.get("wall", 5.0),
                    memory_mb=options.get("memory_mb", 512))
    workers = options.get("workers", min(4, os.cpu_count() or 1))

    def score_one(job: tuple[str, dict]) -> float | None:
        completion, row = job
        if row.get("tests") is None:
            return None
        return run_tests(extract_code(completion), as_tests(row["tests"], row.get("entry_point")), limits).score

    def code_passes(prompts: list[list[dict]], completions: list[str], rows: list[dict]) -> list[float | None]:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(score_one, zip(completions, rows, strict=True)))

    return code_passes


# The program the sandboxed interpreter runs; `PARAMS` is prepended. It sets the limits and the
# audit hook before the generated code exists in the process, then prints one result line.
HARNESS = r'''
import os, resource, sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
BLOCKED = {
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
    "socket.sendto", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
    "os.fork", "os.forkpty", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.dlsym",
    "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.call_function", "resource.setrlimit", "resource.prlimit",
}
PATH_ARGS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.chmod": (0,),
    "os.chown": (0,), "os.symlink": (0, 1), "os.link": (0, 1), "os.truncate": (0,), "os.utime": (0,),
    "os.chflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,), "shutil.rmtree": (0,),
    "shutil.copyfile": (1,), "shutil.copytree": (1,), "shutil.move": (1,), "shutil.chown": (0,),
}


def make_hook(sandbox):
    realpath, fsdecode, sep = os.path.realpath, os.fsdecode, os.sep

    def inside(path):
        if isinstance(path, int):
            return True  # an already open descriptor
        full = realpath(fsdecode(path))
        return full == sandbox or full.startswith(sandbox + sep)

    def hook(event, args):
        if event in BLOCKED:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            if args[2] & WRITE_FLAGS and not inside(args[0]):
                raise PermissionError(f"sandbox: writing {args[0]!r} outside the working directory is not allowed")
        elif event in PATH_ARGS:
            for i in PATH_ARGS[event]:
                if i < len(args) and isinstance(args[i], (str, bytes, os.PathLike)) and not inside(args[i]):
                    raise PermissionError(f"sandbox: {event} on {args[i]!r} is not allowed")

    return hook


def main(params):
    nonce = params.pop("nonce")
    resource.setrlimit(resource.RLIMIT_CPU, (params["cpu"], params["cpu"] + 1))
    for kind, value in ((resource.RLIMIT_AS, params["memory"]), (resource.RLIMIT_FSIZE, params["fsize"]),
                        (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(kind, (value, value))
    sys.addaudithook(make_hook(params["sandbox"]))
    namespace = {"__name__": "solution"}  # not "__main__": a main block would wait for input
    passed, detail = 0, ""
    try:
        exec(compile(params["code"], "solution.py", "exec"), namespace)
    except BaseException as exc:
        detail = f"solution raised {type(exc).__name__}: {exc}"
    else:
        for n, test in enumerate(params["tests"], 1):
            try:
                exec(compile(test, f"test_{n}.py", "exec"), namespace)
                passed += 1
            except BaseException as exc:
                detail = detail or f"test {n} failed: {type(exc).__name__}: {exc}"
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    detail = " ".join(detail.split())[:300]
    os.write(1, f"\n{nonce} {passed} {detail}\n".encode("utf-8", "replace"))


main(globals().pop("PARAMS"))  # out of reach of the generated code's globals()
'''
