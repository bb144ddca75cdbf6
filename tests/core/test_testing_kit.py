"""The testing kit applied to its own doubles, and its fixtures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from collab_harness import Conversation, hookimpl
from collab_harness.components import SimulationContext
from collab_harness.testing import (
    FixedJudge,
    JudgeContract,
    ScriptedUser,
    SimulatorContract,
    TaskContract,
    ToyTask,
)


class TestToyTaskContract(TaskContract):
    @pytest.fixture
    def component(self) -> ToyTask:
        return ToyTask()


class TestFixedJudgeContract(JudgeContract):
    @pytest.fixture
    def component(self) -> FixedJudge:
        return FixedJudge({"value": 0.5})


class TestScriptedUserContract(SimulatorContract):
    @pytest.fixture
    def component(self) -> ScriptedUser:
        return ScriptedUser({"turns": ["I need a poem.", "Make it about the sea.", "Perfect, thanks."]})


def test_scripted_user_terminates_on_its_last_turn() -> None:
    user = ScriptedUser({"turns": ["a", "b"]})
    task = ToyTask()
    ex = task.load("test")[0]
    first = asyncio.run(user.respond(SimulationContext(example=ex, conversation=Conversation(), task=task)))
    assert first.message == "a" and not first.terminate
    conv = Conversation.of(("user", "a"), ("assistant", "ok"))
    second = asyncio.run(user.respond(SimulationContext(example=ex, conversation=conv, task=task)))
    assert second.terminate and second.message.startswith("b") and "[[TERMINATE CHAT]]" in second.message


def test_contract_catches_a_broken_metric() -> None:
    """The contract is not a rubber stamp: a metric scoring out of range fails it."""
    from collab_harness import Metric, Score, ScoringContext
    from collab_harness.testing import MetricContract

    class OutOfRange(Metric):
        name = "out-of-range"

        def compute(self, ctx: ScoringContext) -> Score:
            return Score(component=self.name, value=5.0)

    score = asyncio.run(OutOfRange().score(ScoringContext(example=ToyTask().load("test")[0],
                                                         conversation=Conversation.of(("user", "x")))))
    assert not score.ok and "outside declared range" in (score.error or "")
    with pytest.raises(AssertionError, match="failed to score"):
        MetricContract().test_one_turn_conversation_scores(
            OutOfRange(), ToyTask().load("test")[0], None, None
        )


def test_register_plugin_fixture_is_scoped_to_the_test(plugin_host: Any, register_plugin: Any) -> None:
    class P:
        @hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(ToyTask)

    info = register_plugin(P(), name="kit-toy")
    assert info.components == {"task": ["toy"]}
    assert plugin_host.registry.get("task", "toy").plugin == "kit-toy"


def test_register_plugin_fixture_cleaned_up(plugin_host: Any) -> None:
    assert "toy" not in plugin_host.registry.names("task")


def test_scripted_model_fixture_serves_canned_replies(scripted_model: Any, model_client: Any) -> None:
    model = scripted_model(["first", "second"])
    out = asyncio.run(model_client.complete(model, [{"role": "user", "content": "hi"}]))
    assert out.text == "first"
