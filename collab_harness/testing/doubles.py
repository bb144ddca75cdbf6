"""Test doubles: a user simulator with canned turns, a judge returning a given score, a tiny in-memory task, and
scripted assistants (canned replies served through the real model layer)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from ..components import (
    ComponentOptions,
    Judge,
    Kind,
    ScorerRole,
    ScoringContext,
    SimulationContext,
    Task,
    TaskOptions,
    UserSimulator,
)
from ..types import Conversation, Example, Score, UserTurn

__all__ = ["FixedJudge", "ScriptedUser", "ToyTask", "make_example", "scripted_assistant"]


def make_example(
    id: str = "toy-0",
    *,
    task: str = "toy",
    prompt: str = "Write a haiku about the sea, mentioning waves and salt.",
    reference: str = "waves salt sea",
    **metadata: Any,
) -> Example:
    return Example(id=id, task=task, prompt=prompt, reference=reference, metadata=metadata)


class ScriptedUserOptions(ComponentOptions):
    turns: list[str] = Field(default_factory=lambda: ["Hi, I need some help.", "Thanks, that is what I wanted."])
    #: Terminate with the signal on this (0-based) user turn; default: the last canned turn.
    terminate_at: int | None = None


class ScriptedUser(UserSimulator):
    """User simulator that sends canned turns in order, then the termination signal."""

    name: ClassVar[str] = "scripted-user"
    version: ClassVar[str] = "1.0"
    Options: ClassVar[type[ComponentOptions]] = ScriptedUserOptions

    async def respond(self, ctx: SimulationContext) -> UserTurn:
        opts: Any = self.options
        i = len(ctx.conversation.by_role("user"))
        turns: list[str] = opts.turns or [""]
        last = opts.terminate_at if opts.terminate_at is not None else len(turns) - 1
        text = turns[min(i, len(turns) - 1)]
        if i >= last:
            return UserTurn(message=f"{text} {ctx.termination_signal}".strip(), terminate=True)
        return UserTurn(message=text)


class FixedJudgeOptions(ComponentOptions):
    value: float = 1.0
    #: If set, the judge fails with this reason instead of scoring.
    fail: str | None = None


class FixedJudge(Judge):
    """Judge that returns a given score (or a given failure) without calling a model."""

    name: ClassVar[str] = "fixed-judge"
    #: Stands in for an interaction judge (R_judge of MR's paper form).
    role: ClassVar[ScorerRole] = "interaction"
    version: ClassVar[str] = "1.0"
    Options: ClassVar[type[ComponentOptions]] = FixedJudgeOptions

    async def score(self, ctx: ScoringContext) -> Score:
        opts: Any = self.options
        if opts.fail:
            return Score.failed(self.name, opts.fail)
        return self.check_range(Score(component=self.name, value=opts.value, details={"fixed": True}))


class ToyTaskOptions(TaskOptions):
    n: int = 6


class ToyTask(Task):
    """A tiny in-memory task: the goal is a list of key words; success = the answer mentions all of them."""

    name: ClassVar[str] = "toy"
    version: ClassVar[str] = "1.0"
    kind: ClassVar[Kind] = "task"
    description: ClassVar[str] = "Toy task for tests: mention every key word."
    task_desc: ClassVar[str] = "short writing"
    artefact_type: ClassVar[str | None] = "document"
    default_metrics: ClassVar[Mapping[str, float]] = {"fixed-judge": 1.0}
    default_user: ClassVar[str | None] = "shard-user"
    Options: ClassVar[type[ComponentOptions]] = ToyTaskOptions

    WORDS: ClassVar[Sequence[str]] = ("waves", "salt", "gulls", "tide", "harbor", "lantern", "fog", "anchor")

    def splits(self) -> Mapping[str, int | None]:
        n: int = self.options.n  # type: ignore[attr-defined]
        return {"train": n, "test": n}

    def load(self, split: str) -> Sequence[Example]:
        n: int = self.options.n  # type: ignore[attr-defined]
        out = []
        for i in range(n):
            words = [self.WORDS[(i + k) % len(self.WORDS)] for k in range(3)]
            out.append(
                Example(
                    id=f"toy/{split}-{i}",
                    task=self.name,
                    prompt=f"Write a short poem that mentions {', '.join(words)}.",
                    reference=" ".join(words),
                    metadata={
                        "shards": [
                            "I'd like a short poem.",
                            *[f"It should mention {w}." for w in words],
                        ],
                        "words": words,
                    },
                )
            )
        return out

    def check_success(self, example: Example, answer: str) -> bool | None:
        low = answer.lower()
        return all(w in low for w in example.metadata["words"])

    def extract_rule(self, example: Example, conversation: Conversation) -> str | None:
        replies = conversation.by_role("assistant")
        return replies[-1].content if replies else None


def scripted_assistant(
    reply: str | Sequence[str] | Callable[..., str], *, name: str | None = None, **faults: Any
) -> str:
    """Register a scripted assistant with canned replies in the model layer; returns its model string.

    ``faults`` are passed to :func:`collab_harness.models.scripted.register_script` (latency_s, error_rate, ...).
    Unregister with ``collab_harness.models.scripted.unregister_script(model.split('/', 1)[1])`` (the
    ``scripted_model`` fixture does it for you).
    """
    from ..models.scripted import register_script

    return register_script(name or f"assistant-{uuid.uuid4().hex[:8]}", reply, **faults)
