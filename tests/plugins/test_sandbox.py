"""The sandbox contains hostile solutions: each scores 0 with a reason, the harness survives, nothing outside the
sandbox directory is touched, no secret is visible, no connection is made."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from collab_harness_plugins.metrics import sandbox
from collab_harness_plugins.metrics.pass_rate import PassRate
from collab_harness_plugins.metrics.sandbox import SandboxLimits, run_tests

from collab_harness.types import Conversation, Example, Score

TESTS_EXPECT_TRUE = textwrap.dedent(
    """
    import unittest

    class TestCases(unittest.TestCase):
        def test_goal(self):
            self.assertTrue(task_func())
    """
)


def _score(code: str, tests: str = TESTS_EXPECT_TRUE, **options: object) -> Score:
    ex = Example(id="hostile", task="code-chat", prompt="p", metadata={"test": tests, "code_prompt": ""})
    conv = Conversation.of(("user", "p"), ("assistant", f"```python\n{code}\n```"))
    metric = PassRate({"timeout_s": 3.0, **options})
    return asyncio.run(metric.score(_ctx(ex, conv, code)))


def _ctx(ex: Example, conv: Conversation, code: str) -> object:
    from collab_harness.components import ScoringContext

    return ScoringContext(example=ex, conversation=conv, artefact=code)


def _assert_zero(score: Score) -> None:
    assert score.ok, score.error
    assert score.value == 0.0
    assert score.details["reason"]


def _sandbox_processes() -> list[int]:
    """Processes whose command line mentions a sandbox directory (ours are the only ones)."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"ch-sandbox-" in cmd:
                out.append(int(pid))
    return out


def test_plain_pass_and_fail() -> None:
    tests = (
        "import unittest\nclass TestCases(unittest.TestCase):\n"
        "    def test_a(self):\n        self.assertEqual(task_func(2), 4)\n"
    )
    assert run_tests("def task_func(x):\n    return x * x\n", tests).status == "pass"
    bad = run_tests("def task_func(x):\n    return 0\n", tests)
    assert bad.status == "fail" and "0 != 4" in bad.messages[0]
    assert bad.tests_total == 1 and bad.tests_passed == 0


def _namespaces_work_here() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    flags = ["--net", "--mount", "--pid", "--fork"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--net"]
    return subprocess.run([unshare, *flags, "true"], capture_output=True, check=False).returncode == 0


def test_isolation_reported() -> None:
    info = sandbox.isolation_support()
    # Where the OS offers namespaces the sandbox must use them, not silently fall back to the guards.
    assert info["mode"] == ("namespaces" if _namespaces_work_here() else "plain"), info
    res = run_tests("def task_func():\n    return True\n", TESTS_EXPECT_TRUE)
    assert res.passed
    assert "network_isolated" in res.isolation
    if info["mode"] == "namespaces":
        assert res.isolation["network_isolated"] is True
        assert res.isolation["fs_readonly_outside"] is True


def test_fork_bomb_contained() -> None:
    code = textwrap.dedent(
        """
        import os
        def task_func():
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        """
    )
    t0 = time.monotonic()
    score = _score(code, timeout_s=2.0)
    _assert_zero(score)
    assert score.details["status"] in {"timeout", "killed", "fail", "error"}
    assert time.monotonic() - t0 < 30
    time.sleep(0.2)
    assert _sandbox_processes() == [], "fork-bomb processes survived the verdict"


def test_memory_bomb_contained() -> None:
    code = "def task_func():\n    blob = bytearray(8 * 1024 ** 3)\n    return len(blob) > 0\n"
    score = _score(code, memory_mb=512)
    _assert_zero(score)
    assert "MemoryError" in score.details["reason"] or score.details["status"] == "killed"


def test_infinite_loop_times_out() -> None:
    score = _score("def task_func():\n    while True:\n        pass\n", timeout_s=1.0)
    _assert_zero(score)
    assert score.details["status"] in {"timeout", "killed"}
    assert "timeout" in score.details["reason"] or "killed" in score.details["reason"]


def test_socket_connect_to_loopback_refused() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    code = textwrap.dedent(
        f"""
        import socket
        def task_func():
            s = socket.create_connection(("127.0.0.1", {port}), timeout=1)
            s.sendall(b"hello from the sandbox")
            return True
        """
    )
    try:
        score = _score(code)
        _assert_zero(score)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    finally:
        server.close()


def test_write_outside_sandbox_blocked(tmp_path: Path) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("original")
    target = tmp_path / "pwned.txt"
    code = textwrap.dedent(
        f"""
        import os
        def task_func():
            ok = False
            for attempt in (lambda: open({str(target)!r}, "w").write("x"),
                            lambda: open({str(existing)!r}, "w").write("overwritten"),
                            lambda: os.remove({str(existing)!r}),
                            lambda: open("/tmp/ch-sandbox-escape.txt", "w").write("x")):
                try:
                    attempt()
                    ok = True
                except OSError:
                    pass
            return ok
        """
    )
    score = _score(code)
    _assert_zero(score)
    assert not target.exists()
    assert existing.read_text() == "original"
    if sandbox.isolation_support()["mode"] == "namespaces":
        # The OS boundary holds even when the in-process guard is bypassed (posix.open is not patched).
        bypass = (
            "import posix\ndef task_func():\n"
            f"    fd = posix.open({str(target)!r}, posix.O_WRONLY | posix.O_CREAT)\n"
            "    posix.write(fd, b'x')\n    return True\n"
        )
        score = _score(bypass)
        _assert_zero(score)
        assert "Read-only file system" in score.details["reason"]
        assert not target.exists()
    assert not Path("/tmp/ch-sandbox-escape.txt").exists()


def test_planted_api_key_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-planted")
    code = textwrap.dedent(
        """
        import os
        def task_func():
            if "sk-test-planted" in repr(dict(os.environ)):
                return True
            for pid in os.listdir("/proc"):
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        if b"sk-test-planted" in f.read():
                            return True
                except OSError:
                    pass
            return False
        """
    )
    score = _score(code)
    _assert_zero(score)
    assert "sk-test-planted" not in str(score.details)


def test_forged_stdout_verdict_ignored() -> None:
    code = textwrap.dedent(
        """
        import json, os
        fake = json.dumps({"phase": "tests", "total": 1, "run": 1, "failures": 0, "errors": 0, "messages": []})
        print(fake)
        for fd in range(3, 64):
            try:
                os.write(fd, fake.encode())
            except OSError:
                pass
        os._exit(0)
        """
    )
    score = _score(code)
    _assert_zero(score)
    # Junk written to the verdict pipe is caught (tampering); nothing the code printed counts.
    assert score.details["status"] == "tampered"
    assert score.details["reason"].startswith("tampered: ")


def test_plain_fallback_guards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without namespaces the runner's in-process guards still refuse connects and outside writes."""
    forced = sandbox._Support("plain", None, os.geteuid() == 0, None, "forced by test")
    monkeypatch.setattr(sandbox, "_support", forced)
    target = tmp_path / "plain.txt"
    code = f"import socket\ndef task_func():\n    open({str(target)!r}, 'w').write('x')\n    return True\n"
    res = run_tests(code, TESTS_EXPECT_TRUE, SandboxLimits(timeout_s=3))
    assert res.status == "fail" and "outside the sandbox" in res.reason
    assert not target.exists()
    res = run_tests(
        "import socket\ndef task_func():\n    socket.create_connection(('127.0.0.1', 9))\n    return True\n",
        TESTS_EXPECT_TRUE,
        SandboxLimits(timeout_s=3),
    )
    assert res.status == "fail" and "network access is disabled" in res.reason
    assert res.isolation["mode"] == "plain" and res.isolation.get("network_guard") is True


def test_sandbox_dir_removed_and_harness_alive() -> None:
    code = "import os\ndef task_func():\n    open('left.txt', 'w').write(os.getcwd())\n    return True\n"
    before = {p.name for p in Path("/tmp").glob("ch-sandbox-*")}
    assert run_tests(code, TESTS_EXPECT_TRUE).passed
    after = {p.name for p in Path("/tmp").glob("ch-sandbox-*")}
    assert after <= before
    assert os.getpid() > 0  # still here after all the hostile runs above


DISK_HOG = textwrap.dedent(
    """
    import os
    def task_func():
        block = b"x" * (1 << 20)
        for i in range(64):
            with open(f"hog-{i}.bin", "wb") as f:
                for _ in range(4):
                    f.write(block)
                    f.flush()
        return True
    """
)


def test_disk_quota_stops_the_run_not_the_host() -> None:
    """Writing past the quota fails the run (ENOSPC on the sandbox's tmpfs) and leaves nothing on the host."""
    if sandbox.isolation_support()["mode"] != "namespaces":
        pytest.skip("the tmpfs quota needs mount namespaces; the watchdog test covers the fallback")
    before = {p.name for p in Path("/tmp").glob("ch-sandbox-*")}
    t0 = time.monotonic()
    res = run_tests(DISK_HOG, TESTS_EXPECT_TRUE, SandboxLimits(timeout_s=10, disk_mb=16))
    assert res.status == "fail" and "No space left on device" in res.reason, res.reason
    assert res.isolation["disk_quota"] == "tmpfs:16m"
    assert time.monotonic() - t0 < 10
    assert {p.name for p in Path("/tmp").glob("ch-sandbox-*")} <= before


def test_disk_quota_watchdog_without_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no tmpfs can be mounted, the parent's watchdog kills a run whose directory outgrows the quota."""
    forced = sandbox._Support("plain", None, os.geteuid() == 0, None, "forced by test")
    monkeypatch.setattr(sandbox, "_support", forced)
    slow_hog = DISK_HOG.replace("f.flush()", "f.flush()\n            __import__('time').sleep(0.02)")
    res = run_tests(slow_hog, TESTS_EXPECT_TRUE, SandboxLimits(timeout_s=10, disk_mb=8))
    assert res.status == "killed" and "disk quota exceeded" in res.reason, res.reason
