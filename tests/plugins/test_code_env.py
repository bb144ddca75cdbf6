"""What code examples need from the environment: import analysis, the preflight, ``collab-harness doctor``, and a
missing library scored as an environment failure (not a 0)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from collab_harness_plugins.metrics.pass_rate import PassRate, environment_failure
from collab_harness_plugins.tasks.code_chat import CodeChatTask
from collab_harness_plugins.tasks.code_env import (
    missing_modules,
    module_available,
    pip_name,
    preflight,
    required_modules,
    source_imports,
)

from collab_harness.cli.main import cli
from collab_harness.components import ScoringContext
from collab_harness.types import Conversation, Example, Score

ABSENT = "collab_harness_absent_lib"  # a module no environment has


def _example(tests: str, reference: str = "", eid: str = "env/1") -> Example:
    return Example(id=eid, task="code-chat", prompt="p", reference=reference,
                   metadata={"test": tests, "code_prompt": "", "entry_point": "task_func"})


def test_source_imports_marks_optional_and_skips_relative() -> None:
    src = textwrap.dedent(
        """
        import os.path as osp, json
        from collections import Counter
        from . import sibling
        try:
            import yaml
        except ImportError:
            yaml = None
        def f():
            from pandas.testing import assert_frame_equal
        """
    )
    refs = {(r.module, r.optional) for r in source_imports(src)}
    assert refs == {("os.path", False), ("json", False), ("collections", False), ("yaml", True),
                    ("pandas.testing", False)}
    assert source_imports("def broken(:") == []


def test_required_and_missing_modules() -> None:
    tests = f"import unittest\nimport numpy as np\nimport {ABSENT}\nclass TestCases(unittest.TestCase):\n    pass\n"
    ex = _example(tests, reference="import sklearn.cluster\nfrom scipy import stats\n")
    assert required_modules(ex) == sorted(["unittest", "numpy", ABSENT, "sklearn", "scipy"])
    missing = missing_modules(ex)
    assert ABSENT in missing and "numpy" not in missing and "unittest" not in missing
    assert module_available("os") and module_available("sys") and not module_available(ABSENT)
    assert pip_name("sklearn.cluster") == "scikit-learn" and pip_name("numpy") == "numpy"
    env = preflight([("test", ex)])
    assert env[0].example_id == "env/1" and not env[0].ok and ABSENT in env[0].missing


def test_task_capability_and_sample_needs_nothing_missing() -> None:
    task = CodeChatTask({"source": "sample"})
    ex = task.load("test")[0]
    assert task.required_modules(ex) == required_modules(ex)
    assert task.install_names(["sklearn", "bs4"]) == ["scikit-learn", "beautifulsoup4"]
    for split in ("test", "train"):
        for e in task.load(split):
            assert task.missing_modules(e) == [], e.id


def _score(ex: Example, code: str) -> Score:
    ctx = ScoringContext(example=ex, conversation=Conversation.of(("user", "p")), artefact=code)
    return PassRate({"timeout_s": 5}).compute(ctx)


SIMPLE_TESTS = (
    "import unittest\nclass TestCases(unittest.TestCase):\n"
    "    def test_a(self):\n        self.assertEqual(task_func(), 1)\n"
)
TESTS_NEEDING_ABSENT = textwrap.dedent(
    f"""
    import unittest
    import {ABSENT}

    class TestCases(unittest.TestCase):
        def test_a(self):
            self.assertEqual(task_func(), 1)
    """
)


def test_missing_module_the_tests_need_is_an_environment_failure() -> None:
    s = _score(_example(TESTS_NEEDING_ABSENT), "def task_func():\n    return 1\n")
    assert s.value is None and not s.ok
    assert s.error == f"environment: missing module {ABSENT}"
    assert s.details["failure"] == "environment" and s.details["module"] == ABSENT


def test_missing_module_the_reference_needs_is_an_environment_failure() -> None:
    tests = SIMPLE_TESTS
    ref = f"import {ABSENT}\ndef task_func():\n    return 1\n"
    s = _score(_example(tests, reference=ref), ref)
    assert s.value is None and s.details["failure"] == "environment" and s.details["module"] == ABSENT
    assert s.error == f"environment: missing module {ABSENT}"


def test_missing_module_only_the_candidate_imports_is_its_fault() -> None:
    tests = SIMPLE_TESTS
    s = _score(_example(tests, reference="def task_func():\n    return 1\n"),
               f"import {ABSENT}\ndef task_func():\n    return 1\n")
    assert s.ok and s.value == 0.0
    assert ABSENT in s.details["reason"] and s.details["missing_module"] == ABSENT


def test_environment_failure_rules() -> None:
    ex = _example("import unittest\n", reference=f"import {ABSENT}\n")
    assert environment_failure(ex, "environment", "numpy.linalg") == "numpy"
    assert environment_failure(ex, "error", ABSENT) == ABSENT
    assert environment_failure(ex, "error", "numpy") is None  # needed but present: not the environment
    assert environment_failure(ex, "error", "other_absent_lib") is None  # the solution asked: its fault
    # A library (pandas wanting openpyxl) or the tests asked for a module nobody imports directly: environment.
    assert environment_failure(ex, "fail", "other_absent_lib", by_solution=False) == "other_absent_lib"
    assert environment_failure(ex, "pass", None) is None


@pytest.mark.skipif(module_available("openpyxl") or not module_available("pandas"),
                    reason="needs pandas without openpyxl (BigCodeBench/360's situation)")
def test_optional_dependency_missing_below_a_library_is_an_environment_failure() -> None:
    """BigCodeBench/360: the tests' setUp writes an Excel file with pandas, which needs openpyxl; neither the tests
    nor the reference import openpyxl, yet its absence is the environment's fault, not the solution's."""
    tests = textwrap.dedent(
        """
        import os, unittest
        import pandas as pd

        class TestCases(unittest.TestCase):
            def setUp(self):
                pd.DataFrame({"a": [1]}).to_excel("data.xlsx")
            def test_a(self):
                self.assertEqual(task_func(), 1)
        """
    )
    s = _score(_example(tests), "def task_func():\n    return 1\n")
    assert s.value is None and s.details["failure"] == "environment" and s.details["module"] == "openpyxl"


def test_module_the_tests_import_at_run_time_is_an_environment_failure() -> None:
    tests = textwrap.dedent(
        f"""
        import importlib, unittest

        class TestCases(unittest.TestCase):
            def setUp(self):
                importlib.import_module("{ABSENT}")
            def test_a(self):
                self.assertEqual(task_func(), 1)
        """
    )
    s = _score(_example(tests), "def task_func():\n    return 1\n")
    assert s.value is None and s.details["failure"] == "environment" and s.details["module"] == ABSENT


def test_doctor_lists_code_chat_sample() -> None:
    res = CliRunner().invoke(cli, ["doctor", "--task", "code-chat"])
    assert res.exit_code == 0, res.output
    assert "code-chat (source: sample, 30 examples): every example has what it imports" in res.output
    assert "numpy" in res.output and "pandas" in res.output


def test_doctor_reports_what_is_missing(tmp_path: Path) -> None:
    rows = []
    for i, lib in enumerate(["numpy", ABSENT, ABSENT]):
        code_prompt = f"import {lib}\ndef task_func():\n"
        rows.append({
            "task_id": f"BigCodeBench/{i}", "complete_prompt": code_prompt, "instruct_prompt": "Do it.",
            "canonical_solution": "    return 1\n", "code_prompt": code_prompt, "entry_point": "task_func",
            "test": "import unittest\nclass TestCases(unittest.TestCase):\n    def test_a(self):\n        pass\n",
            "doc_struct": "{}", "libs": f"['{lib}']",
        })
    data = tmp_path / "bcb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(cli, ["doctor", "--task", "code-chat", "--data", str(data), "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert row["examples"] == 3 and row["lacking_examples"] == 2
    assert row["missing"][ABSENT]["examples"] == 2 and row["missing"][ABSENT]["ids"] == ["BigCodeBench/1",
                                                                                            "BigCodeBench/2"]
    text = CliRunner().invoke(cli, ["doctor", "--task", "code-chat", "--data", str(data)])
    assert "2 examples lack a module" in text.output and f"pip install {ABSENT}" in text.output
    strict = CliRunner().invoke(cli, ["doctor", "--task", "code-chat", "--data", str(data), "--strict"])
    assert strict.exit_code == 1


def test_doctor_all_tasks_names_no_plugin_and_skips_non_code_tasks() -> None:
    res = CliRunner().invoke(cli, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["task"]: r for r in json.loads(res.output)}
    assert rows["code-chat"]["applicable"] is True
    assert rows["math-chat"]["applicable"] is False
    source = Path(__file__).resolve().parents[2] / "collab_harness" / "cli" / "doctor_cmd.py"
    assert "collab_harness_plugins" not in source.read_text()


@pytest.mark.parametrize("name", ["os", "json", "unittest"])
def test_stdlib_always_available(name: str) -> None:
    assert module_available(name)
