"""``code-chat``: offline sample, hub loader (on local files in the hub's schema), seeded 80/20 split, shards,
extraction rule and success check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from collab_harness_plugins.tasks.code_chat import (
    CodeChatTask,
    build_shards,
    extract_code,
    fenced_blocks,
    register_tasks,
    with_code_prompt,
)

from collab_harness.testing import TaskContract
from collab_harness.types import Conversation, Example

HUB_TESTS = (
    "import unittest\nclass TestCases(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(task_func(2, 3), 5)\n"
    "    def test_neg(self):\n        self.assertEqual(task_func(-1, 1), 0)\n"
)


def _hub_record(i: int) -> dict[str, object]:
    code_prompt = "import math\ndef task_func(a, b):\n"
    return {
        "task_id": f"BigCodeBench/{i}",
        "complete_prompt": code_prompt + '    """Add two numbers."""\n',
        "instruct_prompt": "Add two integers and return the sum.\nThe function should output with:\n    int: the sum."
        f"\nYou should write self-contained code starting with:\n```\n{code_prompt}```",
        "canonical_solution": "    return a + b\n",
        "code_prompt": code_prompt,
        "test": HUB_TESTS,
        "entry_point": "task_func",
        "doc_struct": "{}",
        "libs": "['math']",
    }


def test_sample_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = CodeChatTask()
    assert task.resolved_source == "sample"
    sizes = task.splits()
    assert sizes == {"train": 10, "test": 20}
    for ex in task.load("test"):
        md = ex.metadata
        assert ex.id.startswith("code-chat/sample-") and ex.task == "code-chat"
        assert ex.reference.startswith(md["code_prompt"])
        assert "class TestCases(unittest.TestCase)" in md["test"]
        assert md["entry_point"] == "task_func"
        assert md["extraction_requirement"] == f"The code must start with:\n{md['code_prompt']}"
        assert md["shards"][0].startswith("I need a Python function")


def test_task_identity() -> None:
    assert CodeChatTask.name == "code-chat"
    assert CodeChatTask.artefact_type == "code"
    assert CodeChatTask.default_metrics == {"pass_rate": 1.0, "interactivity": 1.0, "token_amount": 0.0}
    assert CodeChatTask.penalty_lambda == 5e-4
    assert CodeChatTask.hub_sizes == {"train": 912, "test": 228}
    got: list[type] = []
    register_tasks(got.append)
    assert got == [CodeChatTask]


def test_hub_schema_local_file(tmp_path: Path) -> None:
    path = tmp_path / "bcb.jsonl"
    path.write_text("".join(json.dumps(_hub_record(i)) + "\n" for i in range(3)))
    task = CodeChatTask({"source": "local", "data": str(path)})
    ex = task.load("test")[0]
    assert ex.id == "BigCodeBench/0"
    assert ex.prompt.startswith("Add two integers")
    assert ex.reference == "import math\ndef task_func(a, b):\n    return a + b\n"
    assert ex.metadata["libs"] == ["math"]
    assert ex.metadata["test"] == HUB_TESTS
    assert ex.metadata["extraction_requirement"].endswith("def task_func(a, b):\n")
    shards = task.goal_shards(ex)
    assert shards[0].startswith("I need a Python function to add two integers")
    assert shards[-1].startswith("The code must start with:")
    assert any("output with" in s for s in shards)
    assert task.check_success(ex, f"```python\n{ex.reference}```") is True
    assert task.check_success(ex, "```python\ndef task_func(a, b):\n    return a - b\n```") is False


def test_hub_partition_seeded_80_20() -> None:
    raw = {"v0.1.2": [_hub_record(i) for i in reversed(range(1140))], "v0.1.0_hf": [_hub_record(0)]}
    parts = CodeChatTask({"seed": 0}).hub_partition(raw)
    assert {k: len(v) for k, v in parts.items()} == {"train": 912, "test": 228}
    train_ids = {r["task_id"] for r in parts["train"]}
    test_ids = {r["task_id"] for r in parts["test"]}
    assert not train_ids & test_ids and len(train_ids | test_ids) == 1140
    # Same seed -> same split, whatever the hub's row order; another seed -> a different split.
    shuffled = {"v0.1.2": [_hub_record(i) for i in range(1140)]}
    again = CodeChatTask({"seed": 0}).hub_partition(shuffled)
    assert [r["task_id"] for r in again["test"]] == [r["task_id"] for r in parts["test"]]
    other = CodeChatTask({"seed": 1}).hub_partition(raw)
    assert {r["task_id"] for r in other["test"]} != test_ids
    with pytest.raises(KeyError):
        CodeChatTask().hub_partition({"v9": [], "v8": []})


def test_extract_code_and_rule() -> None:
    text = "First:\n```python\nx = 1\n```\nbetter:\n```py\ndef task_func():\n    return 2\n```\nbye"
    assert extract_code(text) == "def task_func():\n    return 2"
    assert extract_code("def f(): pass") == "def f(): pass"
    assert with_code_prompt("def task_func(): pass", "import re\nimport json\ndef task_func():\n").startswith(
        "import re\nimport json\n"
    )
    task = CodeChatTask({"source": "sample"})
    ex = task.load("test")[0]
    conv = Conversation.of(
        ("user", "hi"), ("assistant", f"```python\n{ex.reference}```"), ("user", "thanks"), ("assistant", "bye")
    )
    assert task.extract_rule(ex, conv) == ex.reference.rstrip("\n")
    assert task.extract_rule(ex, Conversation.of(("user", "hi"), ("assistant", "no code"))) is None


def test_shards_split_requirements() -> None:
    prompt = (
        "Write a function that sorts numbers. It drops None values.\n- Raise ValueError for strings.\n"
        "The function should output with:\n    list: sorted numbers.\n"
        "You should write self-contained code starting with:\n```\ndef task_func(xs):\n```"
    )
    shards = build_shards(prompt, "def task_func(xs):\n")
    assert shards == [
        "I need a Python function that sorts numbers.",
        "Write a function that sorts numbers.",
        "It drops None values.",
        "Raise ValueError for strings.",
        "The function should output with: list: sorted numbers.",
        "The code must start with:\ndef task_func(xs):",
    ]


def test_check_success_without_tests_is_unknown() -> None:
    ex = Example(id="x", task="code-chat", prompt="p")
    assert CodeChatTask({"source": "sample"}).check_success(ex, "code") is None


class TestCodeChatContract(TaskContract):
    @pytest.fixture
    def component(self) -> CodeChatTask:
        return CodeChatTask({"source": "sample"})


DOCSTRING_FENCE = 'def task_func():\n    """Usage:\n\n    ```python\n    task_func()\n    ```\n    """\n    return 1\n'


def test_extract_code_keeps_code_that_is_already_code() -> None:
    assert extract_code(DOCSTRING_FENCE) == DOCSTRING_FENCE.rstrip("\n")
    message = f"Sure:\n```python\n{DOCSTRING_FENCE}```\nDone."
    assert extract_code(message) == DOCSTRING_FENCE.rstrip("\n")
    assert fenced_blocks("a\n```py\nx = 1\n```\nb\n~~~\ny\n~~~") == [("py", "x = 1"), ("", "y")]
    assert extract_code("inline ```python\nx = 2\n``` end") == "x = 2"


def test_code_task_capabilities() -> None:
    task = CodeChatTask({"source": "sample"})
    assert CodeChatTask.check_success_executor == "sandbox"
    ex = task.load("test")[5]  # a pandas task
    assert "pandas" in task.required_modules(ex) and task.missing_modules(ex) == []
