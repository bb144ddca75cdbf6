"""``llm-user``: LLM-played lazy user, driven here by scripted models through the real model client."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from collab_harness_plugins.simulators.llm_user import LLMUser, build_messages

from collab_harness import ComponentError, Conversation, Example
from collab_harness.components import DEFAULT_TERMINATION_SIGNAL, SimulationContext, Task
from collab_harness.testing import SimulatorContract, ToyTask


def _reply(message: Any, terminate: bool = False, thought: str = "hmm") -> str:
    return json.dumps({"thought": thought, "message": message, "terminate": terminate})


@pytest.fixture
def client() -> Any:
    from collab_harness.models.client import Client

    return Client(use_cache=False)


@pytest.fixture
def task() -> ToyTask:
    return ToyTask()


@pytest.fixture
def ex(task: ToyTask) -> Example:
    return task.load("test")[0]


def _ctx(ex: Example, conv: Conversation, task: Task, client: Any, **kw: Any) -> SimulationContext:
    return SimulationContext(example=ex, conversation=conv, task=task, client=client, **kw)


class TestLLMUserContract(SimulatorContract):
    @pytest.fixture
    def model_client(self) -> Any:
        from collab_harness.models.client import Client

        return Client(use_cache=False)

    @pytest.fixture
    def component(self, scripted_model: Any) -> LLMUser:
        return LLMUser({"model": scripted_model(_reply("hey, can you write me something short?"))})


async def test_message_and_thought(scripted_model: Any, client: Any, task: ToyTask, ex: Example) -> None:
    user = LLMUser({"model": scripted_model(_reply("I need a poem, nothing fancy", thought="start vague"))})
    turn = await user.respond(_ctx(ex, Conversation(), task, client))
    assert turn.message == "I need a poem, nothing fancy"
    assert not turn.terminate and turn.thought == "start vague"


async def test_terminate_appends_signal(scripted_model: Any, client: Any, task: ToyTask, ex: Example) -> None:
    conv = Conversation.of(("user", "poem pls"), ("assistant", "Waves, salt and gulls in one little poem."))
    user = LLMUser({"model": scripted_model(_reply("Perfect, thanks!", terminate=True))})
    turn = await user.respond(_ctx(ex, conv, task, client))
    assert turn.terminate and turn.message == f"Perfect, thanks! {DEFAULT_TERMINATION_SIGNAL}"
    # The signal written without the flag still ends the chat (the loop checks `signal in message`).
    user = LLMUser({"model": scripted_model(_reply(f"ok bye {DEFAULT_TERMINATION_SIGNAL}", terminate=False))})
    turn = await user.respond(_ctx(ex, conv, task, client))
    assert turn.terminate and turn.message.count(DEFAULT_TERMINATION_SIGNAL) == 1
    # Overridden signal.
    user = LLMUser({"model": scripted_model(_reply("done", terminate=True)), "termination_signal": "<<BYE>>"})
    turn = await user.respond(_ctx(ex, conv, task, client))
    assert turn.message == "done <<BYE>>"


async def test_numbers_stay_strings(scripted_model: Any, client: Any, task: ToyTask, ex: Example) -> None:
    for raw in (_reply("42"), _reply(42), _reply("007")):
        turn = await LLMUser({"model": scripted_model(raw)}).respond(_ctx(ex, Conversation(), task, client))
        assert isinstance(turn.message, str)
        assert turn.message == ("007" if "007" in raw else "42")


async def test_model_sees_goal_flipped_roles_and_seed(scripted_model: Any, client: Any, task: ToyTask,
                                                       ex: Example) -> None:
    seen: list[tuple[Sequence[Mapping[str, str]], Any, int]] = []

    def model(messages: Sequence[Mapping[str, str]], params: Any, sample_index: int) -> str:
        seen.append((messages, params, sample_index))
        return _reply("it should mention waves")

    conv = Conversation.of(("system", "assistant setup"), ("user", "poem pls"), ("assistant", "About what?"))
    user = LLMUser({"model": scripted_model(model), "temperature": 0.7})
    await user.respond(_ctx(ex, conv, task, client, seed=11, sample_index=2))
    messages, params, sample_index = seen[-1]
    system = messages[0]["content"]
    assert messages[0]["role"] == "system"
    assert ex.prompt in system and task.task_desc in system and DEFAULT_TERMINATION_SIGNAL in system
    # The simulator speaks as "assistant" in its own frame; the assistant's message arrives as "user".
    assert [m["role"] for m in messages[1:]] == ["assistant", "user"]
    assert messages[1]["content"] == "poem pls" and messages[2]["content"].startswith("About what?")
    assert all("assistant setup" not in m["content"] for m in messages)
    assert sample_index == 2 and params.seed == 11 and params.temperature == 0.7


def test_opening_prompt_ends_with_user_turn(task: ToyTask, ex: Example) -> None:
    msgs = build_messages(_ctx(ex, Conversation(), task, None), DEFAULT_TERMINATION_SIGNAL)
    assert [m["role"] for m in msgs] == ["system", "user"]


async def test_invalid_reply_retried(scripted_model: Any, client: Any, task: ToyTask, ex: Example) -> None:
    calls: list[int] = []

    def model(messages: Any, params: Any, sample_index: int) -> str:
        calls.append(1)
        # First an empty, non-terminating message (rejected by the schema), then a good one.
        return _reply("") if len(calls) == 1 else _reply("a poem about the sea")

    turn = await LLMUser({"model": scripted_model(model)}).respond(_ctx(ex, Conversation(), task, client))
    assert turn.message == "a poem about the sea" and len(calls) == 2


async def test_failure_raises_component_error(scripted_model: Any, client: Any, task: ToyTask, ex: Example) -> None:
    calls: list[int] = []

    def model(messages: Any, params: Any, sample_index: int) -> str:
        calls.append(1)
        return "sure thing, here is what I'd say: write me a poem"

    user = LLMUser({"model": scripted_model(model), "max_attempts": 2})
    with pytest.raises(ComponentError) as info:
        await user.respond(_ctx(ex, Conversation(), task, client))
    assert info.value.component == "llm-user" and info.value.sample_id == ex.id
    assert "llm-user" in str(info.value) and "2 attempt" in str(info.value) and "write me a poem" in str(info.value)
    assert len(calls) == 2


async def test_malformed_model_raises_component_error(scripted_model: Any, client: Any, task: ToyTask,
                                                      ex: Example) -> None:
    user = LLMUser({"model": scripted_model(_reply("fine"), malformed_rate=1.0)})
    with pytest.raises(ComponentError, match="llm-user"):
        await user.respond(_ctx(ex, Conversation(), task, client))


async def test_no_client_raises(task: ToyTask, ex: Example) -> None:
    with pytest.raises(ComponentError, match="no model client"):
        await LLMUser().respond(_ctx(ex, Conversation(), task, None))


def test_registered(plugin_host: Any) -> None:
    assert plugin_host.registry.get("simulator", "llm-user").cls is LLMUser
