"""How a plugin author checks their components with collab-harness's contract classes."""

from __future__ import annotations

import pytest
from collab_harness_example import KeywordNoteTask, KeywordRecall

from collab_harness import Example
from collab_harness.testing import MetricContract, TaskContract


class TestKeywordNoteTask(TaskContract):
    @pytest.fixture
    def component(self) -> KeywordNoteTask:
        return KeywordNoteTask()


class TestKeywordRecall(MetricContract):
    @pytest.fixture
    def component(self) -> KeywordRecall:
        return KeywordRecall()

    @pytest.fixture
    def example(self) -> Example:
        return KeywordNoteTask().load("test")[0]
