"""Forgery attempts against the code verdict: every one must score 0 with a reason, and each that reaches for the
test framework, the runner or its verdict channel is reported as ``tampered``. The control solution passes.

Each case is a wrong solution (it squares badly and never raises) plus a forgery; without the forgery it fails.
"""

from __future__ import annotations

import dis
import importlib.util
import textwrap
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from collab_harness_plugins.metrics import sandbox
from collab_harness_plugins.metrics.pass_rate import PassRate

from collab_harness.components import ScoringContext
from collab_harness.types import Conversation, Example, Score

TESTS = textwrap.dedent(
    """
    import unittest

    class TestCases(unittest.TestCase):
        def test_square(self):
            self.assertEqual(task_func(3), 9)

        def test_stored(self):
            result = task_func(4)
            self.assertEqual(result, 16)

        def test_raises(self):
            with self.assertRaises(ValueError):
                task_func(-1)
    """
)

NUMPY_TESTS = textwrap.dedent(
    """
    import unittest
    import numpy as np

    class TestCases(unittest.TestCase):
        def test_values(self):
            np.testing.assert_allclose(task_func(3), [0.0, 1.0, 4.0])
    """
)

GOOD = "def task_func(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x * x\n"
WRONG = "def task_func(x):\n    return 0\n"

# name -> (solution, tests, statuses it may end in). "tampered" alone: the attempt itself must be reported.
TAMPERED = {"tampered"}
ZERO = {"fail", "error", "timeout", "killed", "tampered"}
CASES: dict[str, tuple[str, str, set[str]]] = {
    "patch_assert_methods_at_load": ("""
        import contextlib, unittest
        unittest.TestCase.assertEqual = lambda self, a, b, msg=None: None
        unittest.TestCase.assertRaises = lambda self, *a, **k: contextlib.nullcontext()
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "patch_assert_methods_during_the_call": ("""
        import unittest
        def task_func(x):
            try:
                unittest.TestCase.assertEqual = lambda self, a, b, msg=None: None
            except TypeError:
                type.__setattr__(unittest.case.TestCase, "assertEqual", lambda *a, **k: None)
            return 0
        """, TESTS, ZERO),
    "patch_testcase_run": ("""
        import unittest
        unittest.TestCase.run = lambda self, result=None: result
        unittest.TestCase.__call__ = lambda self, result=None: result
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "patch_result_classes": ("""
        import unittest, unittest.runner
        unittest.TestResult.wasSuccessful = lambda self: True
        unittest.TestResult.addFailure = lambda self, test, err: None
        unittest.TestResult.addError = lambda self, test, err: None
        unittest.TextTestResult.addFailure = lambda self, test, err: None
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "replace_result_classes": ("""
        import unittest, unittest.result, unittest.runner
        class Always:
            failures, errors, skipped, expectedFailures, unexpectedSuccesses, testsRun = [], [], [], [], [], 3
            def wasSuccessful(self):
                return True
        unittest.TestResult = unittest.result.TestResult = Always
        unittest.runner.TextTestResult = Always
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "replace_sys_modules_unittest": ("""
        import contextlib, sys, types
        fake = types.ModuleType("unittest")
        class TestCase:
            def __init__(self, name="runTest"):
                pass
            def __getattr__(self, name):
                return lambda *a, **k: contextlib.nullcontext()
        fake.TestCase = TestCase
        fake.main = lambda *a, **k: None
        sys.modules["unittest"] = fake
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "patch_case_module_globals": ("""
        import unittest.case as case
        class Swallow:
            def __init__(self, *a, **k):
                pass
            def handle(self, name, args, kwargs):
                return self
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return True
        case._AssertRaisesContext = Swallow
        case._Outcome = Swallow
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "patch_module_global_during_the_call": ("""
        import unittest.case as case
        import builtins
        def task_func(x):
            case.safe_repr = lambda obj, short=False: ""
            builtins.isinstance = lambda obj, cls: True
            return 0
        """, TESTS, TAMPERED),
    "call_the_runners_reporting_channel": ("""
        import sys
        def task_func(x):
            for t in ("test_square", "test_stored", "test_raises"):
                sys.audit("collab_harness.sandbox", "record", "test", repr((t, "pass", "", "")))
            sys.audit("collab_harness.sandbox", "record", "done", repr(("ok",)))
            return 0
        """, TESTS, TAMPERED),
    "call_the_runners_functions": ("""
        import sys
        def task_func(x):
            main = sys.modules["__main__"]
            for name in dir(main):
                f = getattr(main, name)
                if callable(f) and name.startswith("_") and not isinstance(f, type):
                    try:
                        f(())
                    except BaseException:
                        pass
            return 0
        """, TESTS, TAMPERED),
    "print_fake_success_markers": ("""
        import sys
        print("Ran 3 tests in 0.001s\\n\\nOK")
        print('{"phase": "tests", "total": 3, "run": 3, "failures": 0, "errors": 0, "messages": []}')
        sys.stderr.write("OK\\n")
        def task_func(x):
            print("all tests passed")
            return 0
        """, TESTS, {"fail"}),
    "fake_pass_on_every_fd_then_hang": ("""
        import json, os, time
        fake = json.dumps({"phase": "tests", "total": 3, "run": 3, "failures": 0, "errors": 0}).encode()
        for fd in range(3, 64):
            try:
                os.write(fd, fake + b"\\n")
            except OSError:
                pass
        while True:
            time.sleep(1)
        """, TESTS, {"tampered", "timeout"}),
    "claim_success_then_hang_in_a_test": ("""
        import time
        def task_func(x):
            print("OK")
            time.sleep(60)
        """, TESTS, {"timeout"}),
    "sys_exit_0_at_load": ("import sys\nsys.exit(0)\n", TESTS, {"error"}),
    "os_exit_0_at_load": ("import os\nos._exit(0)\n", TESTS, {"error"}),
    "os_exit_0_in_a_test": ("""
        import os
        def task_func(x):
            os._exit(0)
        """, TESTS, {"error"}),
    "system_exit_in_a_test": ("""
        def task_func(x):
            raise SystemExit(0)
        """, TESTS, {"fail"}),
    "skiptest_from_the_solution": ("""
        import unittest
        def task_func(x):
            raise unittest.SkipTest("not today")
        """, TESTS, {"fail"}),
    "skiptest_through_testcase_skiptest": ("""
        import unittest
        def task_func(x):
            unittest.TestCase.skipTest(None, "not today")
        """, TESTS, {"fail"}),
    "always_equal_return_value": ("""
        class AlwaysEqual:
            def __eq__(self, other):
                return True
            def __ne__(self, other):
                return False
            __hash__ = object.__hash__
        def task_func(x):
            if x < 0:
                raise ValueError("negative")
            return AlwaysEqual()
        """, TESTS, TAMPERED),
    "frame_walk_to_the_test_instance": ("""
        import sys
        def task_func(x):
            sys._getframe(1).f_locals["self"].assertEqual = lambda *a, **k: None
            return 0
        """, TESTS, ZERO),
    "frame_walk_through_inspect_and_tracebacks": ("""
        import inspect, sys
        def task_func(x):
            try:
                inspect.currentframe().f_back.f_locals["self"].assertEqual = lambda *a, **k: None
            except PermissionError:
                try:
                    raise RuntimeError
                except RuntimeError as e:
                    e.__traceback__.tb_frame.f_back.f_locals["self"].assertEqual = lambda *a, **k: None
            return 0
        """, TESTS, ZERO),
    "frame_through_a_library_then_patch_the_instance": ("""
        import sys, unittest
        from unittest import mock
        def task_func(x):
            f = mock.Mock(side_effect=sys._getframe)()
            while f is not None and not isinstance(f.f_locals.get("self"), unittest.TestCase):
                f = f.f_back
            f.f_locals["self"].assertEqual = lambda *a, **k: None
            return 0
        """, TESTS, TAMPERED),
    "frame_through_a_library_then_patch_the_test_class": ("""
        import sys
        from unittest import mock
        def task_func(x):
            f = mock.Mock(side_effect=sys._getframe)()
            while f is not None and "TestCases" not in f.f_globals:
                f = f.f_back
            cls = f.f_globals["TestCases"]
            for name in ("test_square", "test_stored", "test_raises"):
                setattr(cls, name, lambda self: None)
            return 0
        """, TESTS, TAMPERED),
    "gc_reaches_the_test_instance": ("""
        import gc, unittest
        def task_func(x):
            for o in gc.get_objects():
                if isinstance(o, unittest.TestCase):
                    o.assertEqual = lambda *a, **k: None
            return 0
        """, TESTS, TAMPERED),
    "ctypes_interpreter_api": ("""
        import ctypes
        def task_func(x):
            ctypes.pythonapi.PyFrame_LocalsToFast
            return 0
        """, TESTS, TAMPERED),
    "ctypes_raw_memory": ("""
        import ctypes
        def task_func(x):
            ctypes.c_long.from_address(id(x))
            return 0
        """, TESTS, TAMPERED),
    "settrace_the_runner": ("""
        import sys
        sys.settrace(lambda *a: None)
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "second_audit_hook": ("""
        import sys
        sys.addaudithook(lambda event, args: None)
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "swap_the_code_of_an_assertion": ("""
        import unittest
        unittest.TestCase.assertEqual.__code__ = (lambda self, first, second, msg=None: None).__code__
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "compile_under_the_tests_name": ("""
        exec(compile("x = 1", "collab_harness_tests.py", "exec"))
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "compile_under_a_library_name": ("""
        import inspect
        exec(compile("import sys\\nframe = sys._getframe()", inspect.__file__, "exec"))
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "patch_builtins_at_load": ("""
        import builtins
        builtins.isinstance = lambda obj, cls: True
        def task_func(x):
            return 0
        """, TESTS, TAMPERED),
    "a_thread_patches_later": ("""
        import threading, time, unittest.case as case
        def later():
            time.sleep(0.05)
            case.safe_repr = lambda obj, short=False: ""
        threading.Thread(target=later, daemon=True).start()
        def task_func(x):
            time.sleep(0.1)
            return 0
        """, TESTS, TAMPERED),
    "read_the_runners_memory": ("""
        def task_func(x):
            with open("/proc/self/mem", "rb") as f:
                f.read(1)
            return 0
        """, TESTS, TAMPERED),
    "patch_numpy_testing": ("""
        import numpy as np
        np.testing.assert_allclose = lambda *a, **k: None
        def task_func(x):
            return [0]
        """, NUMPY_TESTS, TAMPERED),
    "rebind_a_test_import_through_globals": ("""
        import types
        def task_func(x):
            fake = types.SimpleNamespace(testing=types.SimpleNamespace(assert_allclose=lambda *a, **k: None))
            globals()["np"] = fake
            return [0]
        """, NUMPY_TESTS, TAMPERED),
    "patch_the_test_class_through_globals": ("""
        def task_func(x):
            cls = globals()["TestCases"]
            for name in ("test_square", "test_stored", "test_raises"):
                setattr(cls, name, lambda self: None)
            return 0
        """, TESTS, TAMPERED),
    "forked_child_writes_the_channel": ("""
        import os
        def task_func(x):
            pid = os.fork()
            if pid == 0:
                for fd in range(3, 64):
                    try:
                        os.write(fd, b"0 done ('ok',) 00\\n")
                    except OSError:
                        pass
                os._exit(0)
            os.waitpid(pid, 0)
            return 0
        """, TESTS, ZERO),
}


def _score(code: str, tests: str, timeout_s: float = 3.0) -> Score:
    ex = Example(id="hostile", task="code-chat", prompt="p", metadata={"test": tests, "code_prompt": ""})
    conv = Conversation.of(("user", "p"), ("assistant", "see artefact"))
    ctx = ScoringContext(example=ex, conversation=conv, artefact=textwrap.dedent(code))
    return PassRate({"timeout_s": timeout_s}).compute(ctx)


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Score]:
    """Every case at once (two at a time: the machine is small), plus the controls."""
    jobs = {name: (code, tests) for name, (code, tests, _s) in CASES.items()}
    jobs["control: good"] = (GOOD, TESTS)
    jobs["control: wrong"] = (WRONG, TESTS)
    jobs["control: numpy good"] = ("import numpy as np\ndef task_func(x):\n    return np.arange(x) ** 2\n",
                                   NUMPY_TESTS)
    with ThreadPoolExecutor(2) as pool:
        scores = list(pool.map(lambda kv: _score(*kv[1]), jobs.items()))
    return dict(zip(jobs, scores, strict=True))


@pytest.mark.slow
def test_controls(verdicts: dict[str, Score]) -> None:
    assert verdicts["control: good"].value == 1.0, verdicts["control: good"].details
    assert verdicts["control: numpy good"].value == 1.0, verdicts["control: numpy good"].details
    wrong = verdicts["control: wrong"]
    assert wrong.value == 0.0 and wrong.details["status"] == "fail"


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_forgery_scores_zero(verdicts: dict[str, Score], case: str) -> None:
    score = verdicts[case]
    allowed = CASES[case][2]
    assert score.ok, score.error
    assert score.value == 0.0, (case, score.details)
    assert score.details["reason"], case
    assert score.details["status"] in allowed, (case, score.details["status"], score.details["reason"])
    if score.details["status"] == "tampered":
        assert score.details["reason"].startswith("tampered: ")
        assert score.details["tampered"]


@pytest.mark.slow
def test_mock_patch_in_tests_is_not_tampering() -> None:
    """Suites patch the solution's libraries (and builtins) with unittest.mock: that must not look like
    tampering, and the patches they undo must leave the snapshots intact."""
    tests = textwrap.dedent(
        """
        import os, unittest
        from unittest import mock
        from unittest.mock import patch, MagicMock

        class TestCases(unittest.TestCase):
            maxDiff = None

            @classmethod
            def setUpClass(cls):
                cls.data = [1, 2, 3]

            def setUp(self):
                self.patcher = patch("os.getcwd", return_value="/nowhere")
                self.patcher.start()
                self.addCleanup(self.patcher.stop)

            @patch("os.listdir")
            def test_listdir(self, mock_listdir):
                mock_listdir.return_value = ["a", "b"]
                self.assertEqual(task_func(), ("/nowhere", ["a", "b"]))
                mock_listdir.assert_called_once_with(".")

            def test_open(self):
                with patch("builtins.open", mock.mock_open(read_data="x")):
                    self.assertEqual(task_func(read=True), "x")

            @unittest.skip("a test-level skip counts as in unittest")
            def test_skipped(self):
                self.fail("never runs")

            def test_subtests(self):
                for i in range(3):
                    with self.subTest(i=i):
                        self.assertIsInstance(task_func(), tuple)
        """
    )
    code = textwrap.dedent(
        """
        import os
        def task_func(read=False):
            if read:
                with open("f") as fh:
                    return fh.read()
            return os.getcwd(), os.listdir(".")
        """
    )
    score = _score(code, tests, timeout_s=10)
    assert score.value == 1.0, score.details
    assert "tampered" not in score.details


def _runner_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("_runner_under_test", sandbox._RUNNER)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _codes(code: types.CodeType) -> list[types.CodeType]:
    out = [code]
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out.extend(_codes(c))
    return out


def test_runner_post_code_reads_no_globals() -> None:
    """The design's rule, checked on the bytecode: code that runs after the first untrusted line looks up no global
    and no closure cell (the solution could rebind those), and builds no nested scope."""
    mod = _runner_module()
    targets = [getattr(mod, n).__code__ for n in mod.POST_FUNCTIONS]
    for holder in (mod._make_enclave, mod._make_entry):
        targets += [c for c in _codes(holder.__code__) if c.co_name in mod.POST_NESTED]
    assert {c.co_name for c in targets} >= {"_run", "_run_test", "_check", "inner", "outer", "after_fork", "entry"}
    forbidden = {"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_DEREF", "LOAD_CLOSURE",
                 "STORE_DEREF", "LOAD_CLASSDEREF"}
    problems = []
    for t in targets:
        for c in _codes(t):
            if c is not t and c.co_name not in mod.POST_NESTED:
                problems.append(f"{t.co_name} builds a nested scope {c.co_name}")
            if c.co_freevars or c.co_cellvars:
                problems.append(f"{c.co_name} uses closure cells {c.co_freevars + c.co_cellvars}")
            problems += [f"{c.co_name}: {i.opname} {i.argval}"
                         for i in dis.get_instructions(c) if i.opname in forbidden]
    assert problems == []


def test_the_runner_file_is_what_runs() -> None:
    assert Path(sandbox._RUNNER).is_file()
    assert "def _run(" in Path(sandbox._RUNNER).read_text()


def test_runner_defaults_hold_no_mutable_state() -> None:
    """The solution can reach the runner module's functions (``sys.modules['__main__']``): what their defaults hold
    must be immutable, or it could be emptied (the one live mapping allowed is ``sys.modules``, which is checked)."""
    import sys

    mod = _runner_module()
    for name in mod.POST_FUNCTIONS:
        for key, value in (getattr(mod, name).__kwdefaults__ or {}).items():
            if value is sys.modules:
                continue
            assert not isinstance(value, list | dict | set | bytearray), (name, key)
    assert isinstance(mod._ALWAYS_HOSTILE, types.MappingProxyType)
