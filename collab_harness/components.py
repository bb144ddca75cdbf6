"""Typed base classes for every kind of component a plugin can register.

A component class carries ``name``, ``version`` and an ``Options`` pydantic model (``extra="forbid"``); an instance
holds validated options. Behaviour lives here, in methods a plugin overrides; hooks only register the classes.
Heavy imports (torch, transformers, trl, bigcodebench) belong inside methods, never at module level.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError, validation_summary
from .executors import run_blocking
from .models.protocol import ModelClient
from .stats import ValueKind
from .types import Conversation, Example, Score, TaskInfo, UserTurn

__all__ = [
    "DEFAULT_TERMINATION_SIGNAL",
    "KINDS",
    "Component",
    "ComponentOptions",
    "Judge",
    "Metric",
    "ScorerRole",
    "ScoringContext",
    "SimulationContext",
    "Task",
    "TaskOptions",
    "TrainResult",
    "TrainerBackend",
    "UserSimulator",
    "ValueKind",
]

DEFAULT_TERMINATION_SIGNAL = "[[TERMINATE CHAT]]"

Kind = Literal["task", "metric", "judge", "simulator", "trainer"]
KINDS: tuple[Kind, ...] = ("task", "metric", "judge", "simulator", "trainer")


class ComponentOptions(BaseModel):
    """Base of every component's options: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Component(ABC):
    """Common base: identity (``kind``, ``name``, ``version``) and validated options."""

    kind: ClassVar[Kind]
    name: ClassVar[str]
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ""
    Options: ClassVar[type[ComponentOptions]] = ComponentOptions

    def __init__(self, options: ComponentOptions | Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        if isinstance(options, ComponentOptions):
            if kwargs:
                options = options.model_copy(update=kwargs)
            self.options = self.Options.model_validate(options.model_dump())
        else:
            data = {**dict(options or {}), **kwargs}
            try:
                self.options = self.Options.model_validate(data)
            except ValidationError as e:
                raise ConfigError(
                    f"invalid options for {self.kind} {self.name!r}: {validation_summary(e.errors(), root='(options)')}"
                ) from e

    def describe(self) -> dict[str, Any]:
        """Identity and options, as recorded in run manifests."""
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "options": self.options.model_dump(mode="json"),
        }

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} {self.options.model_dump()}>"


# --------------------------------------------------------------------------------------------------------- tasks


class TaskOptions(ComponentOptions):
    """Where a task's data comes from. ``source="auto"``: a local file if ``data`` is set, else the hub when online,
    else the shipped offline sample."""

    source: Literal["auto", "hub", "local", "sample"] = "auto"
    data: str | None = None
    seed: int = 0


class Task(Component):
    """A family of examples plus what success means for them."""

    kind: ClassVar[Kind] = "task"
    Options: ClassVar[type[ComponentOptions]] = TaskOptions
    #: The user's goal type, shown to the simulator (e.g. "document creation").
    task_desc: ClassVar[str] = ""
    #: Kind of artefact extracted from a conversation for scoring ("document", "answer", "code"), or None.
    artefact_type: ClassVar[str | None] = None
    #: Metric / judge name -> weight in the MR sum.
    default_metrics: ClassVar[Mapping[str, float]] = {}
    #: Token penalty coefficient for the paper form of MR.
    penalty_lambda: ClassVar[float] = 0.0
    #: The user simulator a run uses when none is named (``--user``).
    default_user: ClassVar[str | None] = None

    @abstractmethod
    def splits(self) -> Mapping[str, int | None]:
        """Split name -> number of examples (None if unknown before loading)."""

    @abstractmethod
    def load(self, split: str) -> Sequence[Example]:
        """All examples of ``split``, in a stable order."""

    def examples(self, split: str = "test", *, limit: int | None = None, seed: int = 0) -> list[Example]:
        """``limit`` examples of ``split`` chosen by ``seed`` (all of them, in order, when ``limit`` is None)."""
        if split not in self.splits():
            raise ConfigError(f"task {self.name!r} has no split {split!r}; splits: {', '.join(self.splits())}")
        items = list(self.load(split))
        if limit is None or limit >= len(items):
            return items
        rng = random.Random(seed)
        chosen = sorted(rng.sample(range(len(items)), limit))
        return [items[i] for i in chosen]

    def goal_shards(self, example: Example) -> list[str]:
        """The goal as ordered pieces for the ``shard-user`` simulator (first shard = the opening, vague request)."""
        shards = example.metadata.get("shards")
        if shards:
            return [str(s) for s in shards]
        return [example.prompt]

    #: Named executor (:mod:`collab_harness.executors`) that :meth:`check_success` runs on: "sandbox" for tasks
    #: whose check executes code, else "metrics".
    check_success_executor: ClassVar[str] = "metrics"

    def brief(self, example: Example) -> str:
        """What a person playing the user (``collab-harness chat``) is shown as their goal: by default the goal type
        and the example's opening request (its first goal shard) — never the reference, nor a prompt holding a hidden
        goal. Tasks whose prompt is no secret (a math problem, a function to write) override it to show it."""
        from .chat import default_brief

        return default_brief(self, example)

    def check_success(self, example: Example, answer: str) -> bool | None:
        """Whether ``answer`` (an assistant message or extracted artefact) meets the goal; None if the task cannot
        tell cheaply. Used by ``shard-user`` to decide when it is satisfied. Blocking: callers on the event loop use
        :meth:`acheck_success`."""
        return None

    async def acheck_success(self, example: Example, answer: str) -> bool | None:
        """:meth:`check_success` on its executor, off the event loop (a code task's check runs a sandbox)."""
        return await run_blocking(self.check_success_executor, self.check_success, example, answer)

    def extraction_requirement(self, example: Example) -> str | None:
        """Extra instruction for artefact extraction (e.g. "code must start with this signature")."""
        req = example.metadata.get("extraction_requirement")
        return str(req) if req else None

    def extract_rule(self, example: Example, conversation: Conversation) -> str | None:
        """A rule-based artefact extractor, used instead of an LLM when it returns a string."""
        return None

    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            description=self.description,
            task_desc=self.task_desc,
            splits=dict(self.splits()),
            default_metrics=dict(self.default_metrics),
            artefact_type=self.artefact_type,
            penalty_lambda=self.penalty_lambda,
            data_source=str(getattr(self.options, "source", "sample")),
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "info": self.info().model_dump(mode="json")}


# ------------------------------------------------------------------------------------------- metrics and judges


@dataclass(frozen=True)
class ScoringContext:
    """Everything a metric or judge may look at.

    ``forward_start`` is the index of the first message of the *forward part* (the candidate response and its
    simulated future) in MR; 0 when a whole dialogue is evaluated. ``artefact`` is the artefact extracted for the
    task's ``artefact_type`` (shared by every metric that needs it), or None.
    """

    example: Example
    conversation: Conversation
    forward_start: int = 0
    artefact: str | None = None
    task: Task | None = None
    client: ModelClient | None = None
    seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def forward(self) -> Conversation:
        return self.conversation.model_copy(update={"messages": self.conversation.messages[self.forward_start :]})


ScorerRole = Literal["task", "interaction", "efficiency", "other"]


class _Scorer(Component):
    #: Inclusive range every successful primary value lies in.
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    higher_is_better: ClassVar[bool] = True
    #: Whether this scorer reads ``ScoringContext.artefact`` (so MR extracts it first).
    needs_artefact: ClassVar[bool] = False
    #: What the score measures, so the core never needs a scorer's name: ``task`` (did the user reach the goal:
    #: BLEU, accuracy, pass rate; the board's task column), ``interaction`` (how the assistant collaborated: the
    #: interactivity judge; R_judge of the paper form), ``efficiency`` (cost to the user: token counts; its
    #: ``values["assistant_tokens"]`` / ``values["total_tokens"]`` are the paper form's T), ``other``.
    role: ClassVar[ScorerRole] = "task"
    #: The nature of the primary value, which decides its confidence interval: ``proportion`` (every value is 0 or
    #: 1: Wilson interval), ``bounded`` (inside ``value_range``: seeded bootstrap that stays in range),
    #: ``unbounded`` (counts: Student-t). None: ``bounded`` when ``value_range`` is finite, else ``unbounded``.
    value_kind: ClassVar[ValueKind | None] = None
    #: The column of the board's safety group this scorer fills (``safe_rate``: safe-response rate,
    #: ``severity``: mean harm severity, ``over_refusal_rate``: over-refusal rate; see collab_harness.report.safety), or
    #: None. The board finds safety scores by this flag, never by a scorer's name.
    board_column: ClassVar[str | None] = None

    def prepare(self, extra: Mapping[str, Any]) -> None:
        """One-time blocking setup before a run's first item (load a tokenizer, a checker's data), given what
        ``ScoringContext.extra`` will hold. The engine runs it off the event loop, so that a first use in the middle
        of a run does not stall the loop. Default: nothing; a failure here is logged and the scorer then fails per
        item as it would have."""

    def describe(self) -> dict[str, Any]:
        lo, hi = self.value_range  # an instance may narrow or widen it (parity mode)
        # JSON has no infinity: an open end is null ([0, null] = counts: intervals are cut at 0 all the same).
        rng = [lo if abs(lo) != float("inf") else None, hi if abs(hi) != float("inf") else None]
        kind = self.value_kind or ("bounded" if None not in rng else "unbounded")
        out = {**super().describe(), "role": self.role, "value_kind": kind,
               "value_range": rng if rng != [None, None] else None, "higher_is_better": self.higher_is_better}
        if self.board_column is not None:
            out["board_column"] = self.board_column
        return out

    @classmethod
    def resolved_value_kind(cls) -> ValueKind:
        if cls.value_kind is not None:
            return cls.value_kind
        lo, hi = cls.value_range
        return "bounded" if (lo > float("-inf") and hi < float("inf")) else "unbounded"

    @abstractmethod
    async def score(self, ctx: ScoringContext) -> Score:
        """Score one conversation. Expected failures return ``Score.failed(...)``, never a silent 0."""

    def check_range(self, score: Score) -> Score:
        lo, hi = self.value_range
        if score.value is not None and not (lo - 1e-9 <= score.value <= hi + 1e-9):
            return Score.failed(self.name, f"value {score.value} outside declared range [{lo}, {hi}]")
        return score


class Metric(_Scorer):
    """A programmatic metric. Implement :meth:`compute` (sync, may be CPU-heavy: it runs on the named executor
    :attr:`executor`, never on the event loop)."""

    kind: ClassVar[Kind] = "metric"
    #: Named executor (:mod:`collab_harness.executors`) :meth:`compute` runs on ("sandbox" for code execution).
    executor: ClassVar[str] = "metrics"

    @abstractmethod
    def compute(self, ctx: ScoringContext) -> Score: ...

    async def score(self, ctx: ScoringContext) -> Score:
        return self.check_range(await run_blocking(self.executor, self.compute, ctx))


class Judge(_Scorer):
    """An LLM (or offline rule) that scores a conversation on a rubric. Uses ``ctx.client``."""

    kind: ClassVar[Kind] = "judge"
    #: Whether the judge has an offline mode: with the run's judge set to ``rules`` (no model), it scores with a
    #: documented deterministic rubric instead of calling a model. A judge without one cannot run offline.
    offline: ClassVar[bool] = False


# -------------------------------------------------------------------------------------------------- simulators


@dataclass(frozen=True)
class SimulationContext:
    """What a user simulator sees: the goal (example, task description) and the conversation so far.

    The conversation is in the assistant's frame (``user`` = the simulator's own earlier messages). ``seed`` and
    ``sample_index`` make a future reproducible and distinct from its siblings.
    """

    example: Example
    conversation: Conversation
    task: Task | None = None
    client: ModelClient | None = None
    seed: int = 0
    sample_index: int = 0
    termination_signal: str = DEFAULT_TERMINATION_SIGNAL

    @property
    def task_desc(self) -> str:
        return self.task.task_desc if self.task else ""

    def rng(self) -> random.Random:
        """A private RNG for this turn, derived from the seed, the sample and the turn number."""
        return random.Random(f"{self.seed}:{self.sample_index}:{len(self.conversation)}:{self.example.id}")


class UserSimulator(Component):
    """Plays the human: knows the goal, reveals it lazily, ends with the termination signal."""

    kind: ClassVar[Kind] = "simulator"
    #: Whether a model string given as the user (``--user openai/gpt-4o``) means this simulator played by that
    #: model (set on exactly one installed simulator; its ``model`` option receives the string).
    plays_model_strings: ClassVar[bool] = False
    #: A person plays this user (``collab-harness chat`` uses it when no ``--user`` is given).
    played_by_person: ClassVar[bool] = False

    @abstractmethod
    async def respond(self, ctx: SimulationContext) -> UserTurn:
        """The next user message (the first one when the conversation is empty)."""


# ---------------------------------------------------------------------------------------------------- trainers


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    steps: int
    metrics: Mapping[str, float] = field(default_factory=dict)


class TrainerBackend(Component):
    """A thin adapter over a training library (TRL) consuming an exported dataset."""

    kind: ClassVar[Kind] = "trainer"
    #: Which export it consumes: "sft", "dpo" or "rl".
    data_format: ClassVar[str] = "sft"

    @abstractmethod
    def train(self, *, data: str, model: str, out: Path) -> TrainResult: ...


BASES: dict[Kind, type[Component]] = {
    "task": Task,
    "metric": Metric,
    "judge": Judge,
    "simulator": UserSimulator,
    "trainer": TrainerBackend,
}
