"""Simulation: exchange counting, termination, seeds, what the assistant sees, failures named by component.

Everything runs through the real model client with scripted models.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from collab_harness.components import SimulationContext, UserSimulator
from collab_harness.models.client import Client
from collab_harness.models.scripted import script_stats
from collab_harness.prompts import PROACTIVE_COLLABORATOR
from collab_harness.simulate import assistant_messages, derive_seed, simulate
from collab_harness.testing import ScriptedUser, ToyTask
from collab_harness.types import Conversation, Example, UserTurn

TASK = ToyTask()
EXAMPLE = TASK.load("test")[0]


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    async with Client(cache_dir=tmp_path / "cache") as c:
        yield c


def never_done(n: int = 20) -> ScriptedUser:
    return ScriptedUser(turns=[f"user turn {i}" for i in range(n)], terminate_at=10_000)


def roles(c: Conversation) -> list[str]:
    return [m.role for m in c.messages]


async def run(client: Any, model: str, history: Conversation, **kw: Any) -> Any:
    kw.setdefault("simulator", never_done())
    kw.setdefault("seed", 0)
    return await simulate(history, example=EXAMPLE, task=TASK, assistant_model=model, client=client, **kw)


async def test_exchanges_after_an_assistant_message(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("assistant says hi")
    h = Conversation.of(("user", "hello"), ("assistant", "hi, how can I help?"))
    res = await run(client, model, h, max_exchanges=2)
    assert res.ok and not res.terminated
    assert res.exchanges == 2 and res.user_messages == 2 and res.assistant_messages == 2
    assert roles(res.conversation) == ["user", "assistant"] + ["user", "assistant"] * 2
    assert res.conversation.messages[:2] == h.messages  # history untouched
    assert len(res.added) == 4 and res.start == 2


async def test_history_ending_with_user_is_completed_first(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("ok")
    h = Conversation.of(("user", "write me a poem"))
    res = await run(client, model, h, max_exchanges=2)
    # The reply to the pending user message completes exchange 1; exchange 2 is a full user + assistant pair.
    assert roles(res.conversation) == ["user", "assistant", "user", "assistant"]
    assert res.exchanges == 2 and res.user_messages == 1
    assert res.conversation.exchanges == 2


async def test_empty_history_simulator_opens(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("sure")
    res = await run(client, model, Conversation(), max_exchanges=1)
    assert roles(res.conversation) == ["user", "assistant"]
    assert res.conversation.messages[0].content == "user turn 0"


async def test_zero_exchanges_is_a_no_op(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("never called")
    h = Conversation.of(("user", "hi"))
    res = await run(client, model, h, max_exchanges=0)
    assert res.conversation == h and res.exchanges == 0
    assert script_stats(model).calls == 0


async def test_termination_keeps_message_and_stops_early(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("a reply")
    sim = ScriptedUser(turns=["first", "second", "thanks"], terminate_at=2)
    h = Conversation.of(("user", "first"), ("assistant", "question?"))
    res = await run(client, model, h, simulator=sim, max_exchanges=5)
    assert res.terminated and res.ok
    last = res.conversation.last
    assert last is not None and last.role == "user" and "[[TERMINATE CHAT]]" in last.content
    # second (+reply) is one exchange; the terminating message does not complete one and gets no reply.
    assert res.exchanges == 1
    assert roles(res.added) == ["user", "assistant", "user"]
    assert script_stats(model).calls == 1


class SignalInTextUser(UserSimulator):
    """Puts the signal in the message text without setting ``terminate``: the loop must still stop."""

    name: ClassVar[str] = "signal-in-text"

    async def respond(self, ctx: SimulationContext) -> UserTurn:
        if len(ctx.conversation.by_role("user")) >= 2:
            return UserTurn(message=f"all good {ctx.termination_signal}")
        return UserTurn(message="more please")


async def test_configurable_termination_signal(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("reply")
    h = Conversation.of(("user", "go"), ("assistant", "ok"))
    res = await run(client, model, h, simulator=SignalInTextUser(), max_exchanges=9, termination_signal="<<DONE>>")
    assert res.terminated and res.conversation.last is not None
    assert res.conversation.last.content == "all good <<DONE>>"
    assert res.exchanges == 1


def seeded_reply(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    return f"s{sample_index}-seed{params.seed}"


async def test_seeds_reproduce_and_distinguish(tmp_path: Path, scripted_model: Callable[..., str]) -> None:
    model = scripted_model(seeded_reply)
    h = Conversation.of(("user", "go"))
    # Fresh clients without cache: equality must come from the seeds, not from cached replies.
    async with Client(use_cache=False) as c1, Client(use_cache=False) as c2:
        a = await run(c1, model, h, max_exchanges=3, seed=7, sample_index=1)
        b = await run(c2, model, h, max_exchanges=3, seed=7, sample_index=1)
        c = await run(c2, model, h, max_exchanges=3, seed=8, sample_index=1)
        d = await run(c2, model, h, max_exchanges=3, seed=7, sample_index=2)
    assert a.conversation == b.conversation
    assert a.conversation != c.conversation and a.conversation != d.conversation
    assert a.conversation.messages[1].content == f"s1-seed{derive_seed(7, 1, 1, 'assistant')}"


async def test_assistant_sees_only_conversation_and_system_prompt(
    client: Any, scripted_model: Callable[..., str]
) -> None:
    seen: list[list[dict[str, Any]]] = []

    def spy(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
        seen.append(messages)
        return "noted"

    model = scripted_model(spy)
    ex = Example(id="secret-1", task="toy", prompt="SECRET GOAL PROMPT", reference="SECRET REFERENCE")
    h = Conversation.of(("user", "help"))
    await simulate(h, example=ex, task=TASK, simulator=never_done(), assistant_model=model, client=client,
                   max_exchanges=2, seed=0, assistant_variant="proactive", system_prompt="Be brief.")
    assert len(seen) == 2
    for msgs in seen:
        text = " ".join(m["content"] for m in msgs)
        assert "SECRET" not in text
        assert msgs[0]["role"] == "system"
        assert PROACTIVE_COLLABORATOR in msgs[0]["content"] and "Be brief." in msgs[0]["content"]
        assert sum(m["role"] == "system" for m in msgs) == 1


def test_assistant_messages_variants() -> None:
    c = Conversation.of(("system", "house rules"), ("user", "hi"))
    assert assistant_messages(c) == [{"role": "system", "content": "house rules"}, {"role": "user", "content": "hi"}]
    assert assistant_messages(Conversation.of(("user", "hi"))) == [{"role": "user", "content": "hi"}]
    with pytest.raises(ValueError, match="unknown assistant variant"):
        assistant_messages(c, variant="pushy")  # type: ignore[arg-type]


async def test_assistant_failure_is_recorded(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("x", fatal_rate=1.0)
    h = Conversation.of(("user", "hi"), ("assistant", "hello"))
    res = await run(client, model, h, max_exchanges=2)
    assert not res.ok and res.errors[0].component == "assistant"
    assert roles(res.added) == ["user"]  # the user message that was sent is kept
    assert res.exchanges == 0


class BrokenUser(UserSimulator):
    name: ClassVar[str] = "broken-user"

    async def respond(self, ctx: SimulationContext) -> UserTurn:
        raise RuntimeError("simulator exploded")


async def test_simulator_failure_is_recorded(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("x")
    res = await run(client, model, Conversation.of(("user", "hi")), simulator=BrokenUser(), max_exchanges=3)
    assert res.exchanges == 1  # the pending exchange was completed before the simulator was asked
    assert [e.component for e in res.errors] == ["user:broken-user"]
    assert "simulator exploded" in res.errors[0].message


async def test_llm_user_through_scripted_model(client: Any, scripted_model: Callable[..., str]) -> None:
    """The real llm-user simulator, played by a scripted model, terminating on its second turn."""
    from collab_harness_plugins.simulators.llm_user import LLMUser

    def user_reply(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
        # In the simulator's frame its own earlier messages are the assistant's.
        done = sum(m["role"] == "assistant" for m in messages) >= 1
        if done:
            return '{"thought": "done", "message": "Thanks! [[TERMINATE CHAT]]", "terminate": true}'
        return '{"thought": "ask", "message": "Make it about the sea.", "terminate": false}'

    user_model = scripted_model(user_reply)
    model = scripted_model("Here is a poem about waves.")
    res = await run(client, model, Conversation(), simulator=LLMUser(model=user_model), max_exchanges=5)
    assert res.ok, res.errors
    assert res.terminated and res.exchanges == 1
    assert roles(res.conversation) == ["user", "assistant", "user"]
