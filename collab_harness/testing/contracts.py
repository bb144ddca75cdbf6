"""Contract base classes: what every component of a kind must do.

Use::

    from collab_harness.testing import MetricContract

    class TestMyMetric(MetricContract):
        @pytest.fixture
        def component(self):
            return MyMetric()

Each contract also reads optional fixtures you may override (``example`` for metrics, judges and simulators;
``task`` for simulators). The tests call async component methods with :func:`asyncio.run`, so they work without
any asyncio pytest plugin.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from typing import Any

import pytest

from ..components import (
    DEFAULT_TERMINATION_SIGNAL,
    Component,
    Judge,
    Metric,
    ScoringContext,
    SimulationContext,
    Task,
    TrainerBackend,
    UserSimulator,
)
from ..errors import ConfigError
from ..types import Conversation, Example, Score, UserTurn
from .doubles import ToyTask

__all__ = [
    "ComponentContract",
    "JudgeContract",
    "MetricContract",
    "SimulatorContract",
    "TaskContract",
    "TrainerContract",
]


class ComponentContract:
    """Identity and options: every component kind shares these checks."""

    base: type[Component] = Component

    @pytest.fixture
    def component(self) -> Component:
        pytest.skip("provide a `component` fixture returning the component under test")

    def test_is_a_component_of_its_kind(self, component: Component) -> None:
        assert isinstance(component, self.base)
        assert isinstance(component.name, str) and component.name
        assert isinstance(component.version, str) and component.version
        assert not inspect.isabstract(type(component))

    def test_options_serialise_and_round_trip(self, component: Component) -> None:
        dumped = component.options.model_dump(mode="json")
        text = json.dumps(dumped)
        rebuilt = type(component)(json.loads(text))
        assert rebuilt.options == component.options

    def test_unknown_option_rejected(self, component: Component) -> None:
        with pytest.raises(ConfigError):
            type(component)({"__surely_not_an_option__": 1})

    def test_describe_is_json(self, component: Component) -> None:
        d = component.describe()
        assert d["name"] == component.name and d["kind"] == component.kind
        json.dumps(d)


class TaskContract(ComponentContract):
    """Tasks: self-description, stable ids, seeded selection, goal shards."""

    base = Task

    def test_info(self, component: Task) -> None:
        info = component.info()
        assert info.name == component.name
        assert info.task_desc.strip(), "task_desc (the simulator's goal type) must be set"
        assert info.splits, "a task needs at least one split"
        assert info.default_metrics, "a task must name its default metrics"
        json.dumps(info.model_dump(mode="json"))

    def test_examples_have_stable_unique_ids(self, component: Task) -> None:
        fresh = type(component)(component.options)
        for split in component.splits():
            first = [e.id for e in component.load(split)]
            again = [e.id for e in fresh.load(split)]
            assert first == again, f"ids of split {split!r} differ between two loads"
            assert len(set(first)) == len(first), f"duplicate ids in split {split!r}"
            for e in component.load(split)[:5]:
                assert isinstance(e, Example)
                assert e.task == component.name
                assert e.prompt.strip()

    def test_sizes_match_splits(self, component: Task) -> None:
        for split, n in component.splits().items():
            if n is not None:
                assert n == len(component.load(split))

    def test_selection_deterministic_under_seed(self, component: Task) -> None:
        split = next(iter(component.splits()))
        n = len(component.load(split))
        k = max(1, min(3, n - 1))
        a = [e.id for e in component.examples(split, limit=k, seed=7)]
        b = [e.id for e in component.examples(split, limit=k, seed=7)]
        assert a == b and len(a) == k

    def test_goal_shards(self, component: Task) -> None:
        split = next(iter(component.splits()))
        for e in component.load(split)[:5]:
            shards = component.goal_shards(e)
            assert shards and all(isinstance(s, str) and s.strip() for s in shards)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


class _ScorerContract(ComponentContract):
    @pytest.fixture
    def example(self) -> Example:
        return Example(id="contract-0", task="contract", prompt="Say hello to the world.", reference="hello world")

    @pytest.fixture
    def scoring_task(self) -> Task | None:
        return None

    @pytest.fixture
    def model_client(self) -> Any:
        return None

    def _ctx(self, example: Example, conv: Conversation, task: Task | None, client: Any) -> ScoringContext:
        replies = conv.by_role("assistant")
        return ScoringContext(
            example=example,
            conversation=conv,
            artefact=replies[-1].content if replies else None,
            task=task,
            client=client,
        )

    def _check(self, component: Any, score: Any) -> Score:
        assert isinstance(score, Score), f"{component.name} returned {type(score).__name__}, not Score"
        assert score.component == component.name
        if score.value is None:
            assert score.error, "a failed score must say why"
        else:
            assert math.isfinite(score.value)
            lo, hi = component.value_range
            assert lo - 1e-9 <= score.value <= hi + 1e-9, f"{score.value} outside {component.value_range}"
        json.dumps(score.model_dump(mode="json"))
        return score

    def test_empty_conversation_handled(self, component: Any, example: Example, scoring_task: Any,
                                        model_client: Any) -> None:
        self._check(component, _run(component.score(self._ctx(example, Conversation(), scoring_task, model_client))))

    def test_one_turn_conversation_scores(self, component: Any, example: Example, scoring_task: Any,
                                          model_client: Any) -> None:
        conv = Conversation.of(("user", example.prompt), ("assistant", example.reference or "Hello!"))
        score = self._check(component, _run(component.score(self._ctx(example, conv, scoring_task, model_client))))
        assert score.ok, f"one-turn conversation failed to score: {score.error}"

    def test_deterministic(self, component: Any, example: Example, scoring_task: Any, model_client: Any) -> None:
        conv = Conversation.of(("user", example.prompt), ("assistant", example.reference or "Hello!"))
        a = _run(component.score(self._ctx(example, conv, scoring_task, model_client)))
        b = _run(component.score(self._ctx(example, conv, scoring_task, model_client)))
        assert a.value == b.value


class MetricContract(_ScorerContract):
    """Metrics: empty and one-turn conversations handled, scores in the declared range, deterministic.

    Override ``example`` with one of your task's examples (the one-turn check answers with its reference, which
    must score successfully), and ``scoring_task`` if the metric needs the task (e.g. for rule extraction).
    """

    base = Metric


class JudgeContract(_ScorerContract):
    """Judges: like metrics, through a model client. Build your ``component`` with a scripted model (see the
    ``scripted_model`` fixture) that answers like a well-behaved judge model, and the contract supplies
    ``model_client``; a judge must also turn malformed model output into a failed score, never an exception."""

    base = Judge

    @pytest.fixture
    def model_client(self) -> Any:
        from ..models.client import Client

        return Client(use_cache=False)


class SimulatorContract(ComponentContract):
    """User simulators: open a conversation, answer after one exchange, deterministic under a seed, and signal
    termination inside the message."""

    base = UserSimulator

    @pytest.fixture
    def task(self) -> Task:
        return ToyTask()

    @pytest.fixture
    def example(self, task: Task) -> Example:
        return task.load(next(iter(task.splits())))[0]

    @pytest.fixture
    def model_client(self) -> Any:
        return None

    def _respond(self, component: UserSimulator, example: Example, task: Task, conv: Conversation,
                 client: Any, seed: int = 0) -> UserTurn:
        ctx = SimulationContext(example=example, conversation=conv, task=task, client=client, seed=seed)
        turn = _run(component.respond(ctx))
        assert isinstance(turn, UserTurn)
        if turn.terminate:
            assert DEFAULT_TERMINATION_SIGNAL in turn.message, "a terminating turn must carry the signal"
        return turn

    def test_opens_the_conversation(self, component: UserSimulator, example: Example, task: Task,
                                    model_client: Any) -> None:
        turn = self._respond(component, example, task, Conversation(), model_client)
        assert turn.message.strip()

    def test_answers_after_one_exchange(self, component: UserSimulator, example: Example, task: Task,
                                        model_client: Any) -> None:
        first = self._respond(component, example, task, Conversation(), model_client)
        conv = Conversation.of(("user", first.message), ("assistant", "Could you tell me more about what you need?"))
        turn = self._respond(component, example, task, conv, model_client)
        assert turn.message.strip()

    def test_deterministic_under_seed(self, component: UserSimulator, example: Example, task: Task,
                                      model_client: Any) -> None:
        a = self._respond(component, example, task, Conversation(), model_client, seed=3)
        b = self._respond(component, example, task, Conversation(), model_client, seed=3)
        assert a == b


class TrainerContract(ComponentContract):
    """Trainer backends: identity, options, a declared data format, and a keyword-only ``train``."""

    base = TrainerBackend

    def test_data_format(self, component: TrainerBackend) -> None:
        assert component.data_format in {"sft", "dpo", "rl"}

    def test_train_signature(self, component: TrainerBackend) -> None:
        params = inspect.signature(component.train).parameters
        for p in ("data", "model", "out"):
            assert p in params and params[p].kind is inspect.Parameter.KEYWORD_ONLY
