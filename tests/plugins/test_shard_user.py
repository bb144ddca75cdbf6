"""``shard-user``: deterministic shard reveal that rewards clarifying questions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
from collab_harness_plugins.simulators.shard_user import ShardUser, gave_answer, rank_by_overlap, revealed_shards

from collab_harness import Conversation, Example
from collab_harness.components import DEFAULT_TERMINATION_SIGNAL, SimulationContext, Task
from collab_harness.testing import SimulatorContract, ToyTask

# ------------------------------------------------------------------------------------------ a small test task

_TRIPS = [
    ("Lisbon", "October", "800 euros", "my dog"),
    ("Kyoto", "April", "2000 dollars", "my parents"),
    ("Oslo", "December", "1500 euros", "two kids"),
    ("Cusco", "June", "1200 dollars", "a friend"),
    ("Hanoi", "March", "900 dollars", "my partner"),
    ("Reykjavik", "August", "2500 euros", "my sister"),
]


class TripTask(Task):
    """Plan a trip; success = the answer mentions every key fact (destination, month, budget, companion)."""

    name: ClassVar[str] = "trip-test"
    description: ClassVar[str] = "test task: trip planning with key facts"
    task_desc: ClassVar[str] = "trip planning"
    default_metrics: ClassVar[Mapping[str, float]] = {"accuracy": 1.0}

    def splits(self) -> Mapping[str, int | None]:
        return {"test": len(_TRIPS)}

    def load(self, split: str) -> Sequence[Example]:
        out = []
        for i, (dest, month, budget, who) in enumerate(_TRIPS):
            shards = [
                "Can you help me plan a trip?",
                f"The destination is {dest}.",
                f"I'm going in {month}.",
                f"My budget is {budget}.",
                f"I'm travelling with {who}.",
            ]
            out.append(Example(
                id=f"trip-{i}", task=self.name,
                prompt=f"Plan a trip to {dest} in {month} for {budget}, travelling with {who}.",
                reference="", metadata={"shards": shards, "facts": [dest, month, budget, who]},
            ))
        return out

    def check_success(self, example: Example, answer: str) -> bool | None:
        low = answer.lower()
        return all(f.lower() in low for f in example.metadata["facts"])


def _ctx(ex: Example, conv: Conversation, task: Task | None, seed: int = 0, sample_index: int = 0) -> SimulationContext:
    return SimulationContext(example=ex, conversation=conv, task=task, seed=seed, sample_index=sample_index)


@pytest.fixture
def task() -> TripTask:
    return TripTask()


@pytest.fixture
def ex(task: TripTask) -> Example:
    return task.load("test")[0]


# ----------------------------------------------------------------------------------------------- unit tests


class TestShardUserContract(SimulatorContract):
    @pytest.fixture
    def component(self) -> ShardUser:
        return ShardUser()


async def test_first_message_is_first_shard_only(task: TripTask, ex: Example) -> None:
    turn = await ShardUser().respond(_ctx(ex, Conversation(), task))
    assert turn.message == "Can you help me plan a trip?"
    assert not turn.terminate and turn.thought == "revealed shards 0 (opening)"
    assert revealed_shards(task.goal_shards(ex), Conversation.of(("user", turn.message))) == {0}


async def test_asked_reveals_two_best_matching_first(task: TripTask, ex: Example) -> None:
    conv = Conversation.of(("user", "Can you help me plan a trip?"),
                           ("assistant", "Sure! What budget do you have in mind?"))
    turn = await ShardUser().respond(_ctx(ex, conv, task))
    shards = task.goal_shards(ex)
    # The budget shard (3) answers the question, so it comes first; then the earliest remaining one (1).
    assert turn.message.index(shards[3]) < turn.message.index(shards[1])
    assert shards[2] not in turn.message and shards[4] not in turn.message
    assert turn.thought == "revealed shards 3,1 (asked: yes)"
    assert not turn.terminate


async def test_not_asked_reveals_less(task: TripTask, ex: Example) -> None:
    user = ShardUser()
    answer = "Here is a lovely generic trip plan with museums, food and walks for you."
    # Second user turn (one user message so far): no question -> only a nudge, no new shard.
    conv = Conversation.of(("user", "Can you help me plan a trip?"), ("assistant", answer))
    turn = await user.respond(_ctx(ex, conv, task))
    assert turn.thought == "revealed shards none (asked: no)"
    assert not any(s in turn.message for s in task.goal_shards(ex)[1:])
    # Third user turn: one shard, in order.
    conv = conv.append("user", turn.message).append("assistant", answer)
    turn = await user.respond(_ctx(ex, conv, task))
    assert turn.thought == "revealed shards 1 (asked: no)"
    assert task.goal_shards(ex)[1] in turn.message


async def test_terminates_when_success_check_passes(task: TripTask, ex: Example) -> None:
    conv = Conversation.of(("user", "Can you help me plan a trip?"),
                           ("assistant", "Here you go: five days in Lisbon in October, on 800 euros, with my dog."))
    turn = await ShardUser().respond(_ctx(ex, conv, task))
    assert turn.terminate and turn.message.endswith(DEFAULT_TERMINATION_SIGNAL)
    assert turn.thought == "success check passed"


async def test_question_mentioning_facts_is_not_an_answer(task: TripTask, ex: Example) -> None:
    conv = Conversation.of(("user", "Can you help me plan a trip?"),
                           ("assistant", "Is it Lisbon in October on 800 euros with my dog?"))
    turn = await ShardUser().respond(_ctx(ex, conv, task))
    assert not turn.terminate


async def test_terminates_when_all_shards_out_and_answered(task: TripTask, ex: Example) -> None:
    shards = task.goal_shards(ex)
    conv = Conversation.of(("user", shards[0]), ("assistant", "Where to?"), ("user", " ".join(shards[1:])),
                           ("assistant", "Here is a plan for a nice city trip with some museums and food."))
    turn = await ShardUser().respond(_ctx(ex, conv, task))
    assert turn.terminate and DEFAULT_TERMINATION_SIGNAL in turn.message
    # But not when the assistant only asks: it is told to go ahead.
    conv = conv.model_copy(update={"messages": conv.messages[:-1]}).append("assistant", "Anything else?")
    turn = await ShardUser().respond(_ctx(ex, conv, task))
    assert not turn.terminate and turn.thought == "revealed shards none (asked: yes)"


async def test_signal_override(task: TripTask, ex: Example) -> None:
    conv = Conversation.of(("user", "x"), ("assistant", "Lisbon in October for 800 euros with my dog, enjoy it."))
    turn = await ShardUser({"termination_signal": "<<END>>"}).respond(_ctx(ex, conv, task))
    assert turn.terminate and turn.message.endswith("<<END>>")


async def test_deterministic_and_seeded_phrasing(task: TripTask, ex: Example) -> None:
    conv = Conversation.of(("user", "Can you help me plan a trip?"), ("assistant", "When are you going?"))
    user = ShardUser()
    a = [await user.respond(_ctx(ex, conv, task, seed=s, sample_index=i)) for s in range(4) for i in range(3)]
    b = [await user.respond(_ctx(ex, conv, task, seed=s, sample_index=i)) for s in range(4) for i in range(3)]
    assert a == b
    # Same shards whatever the seed (only phrasing varies), and the phrasing does vary across seeds/samples.
    assert len({t.thought for t in a}) == 1
    assert len({t.message for t in a}) > 1


def test_helpers() -> None:
    assert not gave_answer("Sure! What topic?")
    assert gave_answer("Here is the poem you wanted, about waves. Want changes?")
    assert rank_by_overlap("what is the budget", [1, 2, 3], ["", "dest x", "month y", "budget z"]) == [3, 1, 2]


async def test_without_task_uses_metadata_shards() -> None:
    ex = ToyTask().load("test")[0]
    turn = await ShardUser().respond(_ctx(ex, Conversation(), None))
    assert turn.message == ex.metadata["shards"][0]


# ------------------------------------------------------------------------ asking is measurably better off

_EXHAUSTED_MARKERS = ("everything i can tell you", "all i know")


def _plan_from(users: Sequence[str]) -> str:
    # Quoted user text loses its question marks: a "?" would count as the assistant asking.
    return "Here is your plan, built from what you told me: " + " ".join(users).replace("?", ".")


def _asker(messages: Sequence[Mapping[str, str]], params: Any, sample_index: int) -> str:
    """Asks clarifying questions until the user has nothing more to say (or 3 questions), then answers using
    everything the user said."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    asked = sum(1 for m in messages if m["role"] == "assistant" and m["content"].endswith("?"))
    exhausted = any(k in users[-1].lower() for k in _EXHAUSTED_MARKERS)
    if asked < 3 and not exhausted:
        topics = ["Where would you like to go, and when?", "What is your budget?", "Who are you travelling with?"]
        return f"Happy to help. {topics[asked]}"
    return _plan_from(users)


def _never_asker(messages: Sequence[Mapping[str, str]], params: Any, sample_index: int) -> str:
    """Answers straight away, every turn, also using everything the user said (so only the asking differs)."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return _plan_from(users)


async def _drive(task: TripTask, ex: Example, client: Any, model: str, max_exchanges: int) -> dict[str, Any]:
    """User turn <-> assistant reply for up to ``max_exchanges`` exchanges; the user's turn after the last reply
    is its verdict (it ends the chat when satisfied)."""
    user = ShardUser()
    conv = Conversation()
    shards = task.goal_shards(ex)
    by_exchange: list[int] = []
    satisfied = False
    while True:
        turn = await user.respond(_ctx(ex, conv, task))
        conv = conv.append("user", turn.message)
        if turn.terminate:
            satisfied = turn.thought == "success check passed"
            break
        if conv.exchanges == max_exchanges:
            break
        reply = await client.complete(model, conv.as_dicts(), component="assistant")
        conv = conv.append("assistant", reply.text)
        by_exchange.append(len(revealed_shards(shards, conv)))
    last = conv.by_role("assistant")[-1].content
    return {"success": bool(task.check_success(ex, last)), "user_satisfied": satisfied,
            "exchanges": conv.exchanges, "revealed_by_3": by_exchange[min(2, len(by_exchange) - 1)],
            "revealed_at_end": len(revealed_shards(shards, conv))}


async def test_asking_pays_off(task: TripTask, scripted_model: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from collab_harness.models.client import Client

    client = Client(use_cache=False)
    asker, never = scripted_model(_asker), scripted_model(_never_asker)
    examples = task.load("test")
    results = {}
    for label, model in (("asker", asker), ("never-asks", never)):
        runs = [await _drive(task, ex, client, model, max_exchanges=6) for ex in examples]
        results[label] = {
            "success_rate": sum(r["success"] for r in runs) / len(runs),
            "user_satisfied": sum(r["user_satisfied"] for r in runs) / len(runs),
            "mean_shards_by_exchange_3": sum(r["revealed_by_3"] for r in runs) / len(runs),
            "mean_shards_at_end": sum(r["revealed_at_end"] for r in runs) / len(runs),
            "mean_exchanges": sum(r["exchanges"] for r in runs) / len(runs),
        }
    with capsys.disabled():
        print(f"\nshard-user, {len(examples)} examples x 5 shards, max 6 exchanges:")
        for label, r in results.items():
            print(f"  {label:10s} " + "  ".join(f"{k}={v:.2f}" for k, v in r.items()))
    a, n = results["asker"], results["never-asks"]
    assert a["success_rate"] == 1.0 and a["user_satisfied"] == 1.0
    assert n["success_rate"] == 0.0
    assert a["mean_shards_by_exchange_3"] == 5.0 and n["mean_shards_by_exchange_3"] == 2.0
    assert a["mean_exchanges"] == 4.0 and n["mean_exchanges"] == 6.0 and n["mean_shards_at_end"] == 4.0


async def test_in_core_simulation(task: TripTask, scripted_model: Any) -> None:
    """Through the core simulation loop: the asker finishes the goal and the user ends the chat."""
    from collab_harness.models.client import Client
    from collab_harness.simulate import simulate

    ex = task.load("test")[1]
    result = await simulate(Conversation(), example=ex, task=task, simulator=ShardUser(),
                            assistant_model=scripted_model(_asker), client=Client(use_cache=False),
                            max_exchanges=7, seed=0)
    assert result.ok and result.terminated and result.exchanges == 4
    assert task.check_success(ex, result.conversation.by_role("assistant")[-1].content)
    assert DEFAULT_TERMINATION_SIGNAL in (result.conversation.last.content if result.conversation.last else "")
