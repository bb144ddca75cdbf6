"""``pass_rate``: every shipped canonical solution passes, wrong ones fail, failures are reported, not raised."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from collab_harness_plugins.metrics.pass_rate import PassRate, register_metrics
from collab_harness_plugins.tasks.code_chat import CodeChatTask

from collab_harness.components import ScoringContext
from collab_harness.errors import ConfigError
from collab_harness.testing import MetricContract
from collab_harness.types import Conversation, Example, Score

TASK = CodeChatTask({"source": "sample"})
EXAMPLES = [e for split in ("test", "train") for e in TASK.load(split)]
WRONG = "def task_func(*args, **kwargs):\n    return None\n"


def _ctx(ex: Example, artefact: str | None, conv: Conversation | None = None) -> ScoringContext:
    conv = conv or Conversation.of(("user", ex.prompt), ("assistant", f"```python\n{ex.reference}```"))
    return ScoringContext(example=ex, conversation=conv, artefact=artefact, task=TASK)


@pytest.fixture(scope="module")
def canonical_scores() -> dict[str, Score]:
    """All canonical verdicts at once, concurrently (the metric is thread-safe)."""
    metric = PassRate()
    with ThreadPoolExecutor(4) as pool:
        scores = list(pool.map(lambda ex: metric.compute(_ctx(ex, ex.reference)), EXAMPLES))
    return {ex.id: s for ex, s in zip(EXAMPLES, scores, strict=True)}


@pytest.mark.parametrize("example_id", [e.id for e in EXAMPLES])
def test_canonical_solution_passes(canonical_scores: dict[str, Score], example_id: str) -> None:
    s = canonical_scores[example_id]
    assert s.ok and s.value == 1.0, s.details
    assert s.values["tests_passed"] == s.values["tests_total"] >= 3
    assert s.details["status"] == "pass"


def test_wrong_solution_fails() -> None:
    ex = EXAMPLES[0]
    s = asyncio.run(PassRate().score(_ctx(ex, WRONG)))
    assert s.ok and s.value == 0.0
    assert s.details["status"] == "fail"
    assert s.values["tests_passed"] < s.values["tests_total"]
    assert s.details["failures"] and len(s.details["failures"][0]) <= 600


def test_partially_right_is_all_or_nothing() -> None:
    ex = next(e for e in EXAMPLES if "def task_func(n):" in e.metadata["code_prompt"] and "Fibonacci" in e.prompt)
    # Right for every n >= 0 but never raises on a negative n: one failing test -> 0.
    code = "def task_func(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
    s = PassRate().compute(_ctx(ex, code))
    assert s.value == 0.0
    assert 0 < s.values["tests_passed"] < s.values["tests_total"]


def test_syntax_error_scores_zero_with_reason() -> None:
    s = PassRate().compute(_ctx(EXAMPLES[0], "def task_func(:\n"))
    assert s.value == 0.0 and s.details["status"] == "error" and "SyntaxError" in s.details["reason"]


def test_missing_artefact_uses_task_rule() -> None:
    ex = EXAMPLES[1]
    body = ex.reference.split("\n", 1)[1]  # drop the import line: the rule restores it from code_prompt
    conv = Conversation.of(("user", "hi"), ("assistant", f"Here you go:\n```python\n{body}```\nDone."))
    s = PassRate().compute(_ctx(ex, None, conv))
    assert s.value == 1.0, s.details
    assert s.details["code_source"] == "task rule"


def test_no_tests_is_failed_score_not_zero() -> None:
    ex = Example(id="x", task="code-chat", prompt="p")
    s = PassRate().compute(_ctx(ex, "def task_func(): pass"))
    assert s.value is None and s.error and "x" in s.error


def test_no_code_at_all_is_failed_score() -> None:
    ex = EXAMPLES[0]
    s = PassRate().compute(ScoringContext(example=ex, conversation=Conversation(), artefact=None))
    assert s.value is None and "no code" in (s.error or "")


def test_options_validated() -> None:
    assert PassRate({"timeout_s": 2, "memory_mb": 256}).options.model_dump()["memory_mb"] == 256
    with pytest.raises(ConfigError):
        PassRate({"timeout": 2})
    with pytest.raises(ConfigError):
        PassRate({"timeout_s": -1})
    assert PassRate().options.model_dump()["network"] is False


def test_registers() -> None:
    got: list[type] = []
    register_metrics(got.append)
    assert got == [PassRate] and PassRate.needs_artefact


class TestPassRateContract(MetricContract):
    @pytest.fixture
    def component(self) -> PassRate:
        return PassRate()

    @pytest.fixture
    def example(self) -> Example:
        return EXAMPLES[0]

    @pytest.fixture
    def scoring_task(self) -> CodeChatTask:
        return TASK


FENCED_DOCSTRING_SOLUTION = '''import re
def task_func(text):
    """Count the words of ``text``.

    Example:
    ```python
    >>> task_func("a b")
    2
    ```
    """
    return len(re.findall(r"\\w+", text))
'''
FENCED_TESTS = (
    "import unittest\nclass TestCases(unittest.TestCase):\n"
    "    def test_two(self):\n        self.assertEqual(task_func('a b'), 2)\n"
    "    def test_none(self):\n        self.assertEqual(task_func(''), 0)\n"
)


def test_artefact_with_fenced_docstring_runs_as_is() -> None:
    """BigCodeBench/487's failure: an extracted artefact holding a fence in a docstring was cut to the fence."""
    ex = Example(id="fenced", task="code-chat", prompt="p", metadata={"test": FENCED_TESTS, "code_prompt": ""})
    s = PassRate().compute(_ctx(ex, FENCED_DOCSTRING_SOLUTION))
    assert s.value == 1.0, s.details
    assert s.details["code_source"] == "artefact"


def test_raw_message_with_fenced_docstring_is_extracted_whole() -> None:
    ex = Example(id="fenced", task="code-chat", prompt="p", metadata={"test": FENCED_TESTS, "code_prompt": ""})
    reply = f"Here is the function:\n\n```python\n{FENCED_DOCSTRING_SOLUTION}```\n\nIt counts words."
    conv = Conversation.of(("user", "count words"), ("assistant", reply))
    s = PassRate().compute(ScoringContext(example=ex, conversation=conv, artefact=None))
    assert s.value == 1.0, s.details
    assert s.details["code_source"] == "last assistant message"


def test_tampering_is_zero_with_reason() -> None:
    ex = EXAMPLES[0]
    code = "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n" + WRONG
    s = PassRate().compute(_ctx(ex, code))
    assert s.ok and s.value == 0.0
    assert s.details["status"] == "tampered" and s.details["reason"].startswith("tampered: ")
    assert s.details["tampered"]


def test_declares_sandbox_executor_and_proportion() -> None:
    assert PassRate.executor == "sandbox"
    assert PassRate.resolved_value_kind() == "proportion"
