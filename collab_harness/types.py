"""Value types shared by every component: messages, conversations, examples, scores.

They are frozen pydantic models so that they validate on the way in, serialise to JSON for run logs, and cannot be
mutated behind a caller's back (a conversation grows by building a new one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Conversation",
    "Example",
    "Message",
    "Role",
    "Score",
    "TaskInfo",
    "UserTurn",
]

Role = Literal["system", "user", "assistant"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Frozen):
    """One chat message."""

    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class Conversation(_Frozen):
    """An ordered list of messages plus provenance (models, seeds, usage) of whoever produced them."""

    messages: tuple[Message, ...] = ()
    provenance: Mapping[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, *pairs: tuple[Role, str] | Message | Mapping[str, str], **provenance: Any) -> Conversation:
        msgs = []
        for p in pairs:
            if isinstance(p, Message):
                msgs.append(p)
            elif isinstance(p, Mapping):
                msgs.append(Message.model_validate(p))
            else:
                msgs.append(Message(role=p[0], content=p[1]))
        return cls(messages=tuple(msgs), provenance=provenance)

    def append(self, role: Role, content: str) -> Conversation:
        return self.model_copy(update={"messages": (*self.messages, Message(role=role, content=content))})

    def extend(self, messages: Iterable[Message]) -> Conversation:
        return self.model_copy(update={"messages": (*self.messages, *messages)})

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def last(self) -> Message | None:
        return self.messages[-1] if self.messages else None

    def by_role(self, role: Role) -> list[Message]:
        return [m for m in self.messages if m.role == role]

    def as_dicts(self) -> list[dict[str, str]]:
        return [m.as_dict() for m in self.messages]

    @property
    def exchanges(self) -> int:
        """Number of exchanges: a user message followed by an assistant reply."""
        n = 0
        prev: str | None = None
        for m in self.messages:
            if m.role == "assistant" and prev == "user":
                n += 1
            prev = m.role
        return n

    def render(self, *, roles: Sequence[Role] = ("user", "assistant")) -> str:
        """Plain-text transcript, for judges and extraction prompts."""
        return "\n\n".join(f"{m.role.upper()}: {m.content}" for m in self.messages if m.role in roles)


class Example(_Frozen):
    """One task example.

    ``prompt`` is the complete single-turn request: the user simulator sees it, the assistant never does.
    ``reference`` is the ground truth (answer, article, canonical code). ``metadata`` is task-specific (tests, entry
    point, level, extraction requirement, goal shards ...). ``id`` is stable across runs and machines.
    """

    id: str
    task: str
    prompt: str
    reference: str = ""
    metadata: Mapping[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id_nonempty(cls, v: str) -> str:
        if not v:
            raise ValueError("example id must be non-empty")
        return v


class Score(_Frozen):
    """What one metric or judge said about one conversation.

    ``value`` is the primary number (``None`` exactly when the score failed, and then ``error`` says why: a failed
    score is never a silent 0). ``values`` holds named sub-values (``token_amount`` reports three). ``component`` is
    the name of the metric or judge that produced it.
    """

    component: str
    value: float | None
    values: Mapping[str, float] = Field(default_factory=dict)
    details: Mapping[str, Any] = Field(default_factory=dict)
    error: str | None = None

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"score value must be finite, got {v}")
        return v

    @property
    def ok(self) -> bool:
        return self.value is not None and self.error is None

    @classmethod
    def failed(cls, component: str, error: str, **details: Any) -> Score:
        return cls(component=component, value=None, error=error, details=details)


class UserTurn(_Frozen):
    """A user simulator's move: the message it sends and whether it ends the conversation."""

    message: str
    terminate: bool = False
    thought: str | None = None


class TaskInfo(_Frozen):
    """How a task describes itself (``collab-harness list tasks``)."""

    name: str
    description: str
    task_desc: str
    splits: Mapping[str, int | None] = Field(default_factory=dict)
    default_metrics: Mapping[str, float] = Field(default_factory=dict)
    artefact_type: str | None = None
    extraction_requirement: str | None = None
    penalty_lambda: float = 0.0
    data_source: str = "sample"
    hub_id: str | None = None
    hub_sizes: Mapping[str, int | None] = Field(default_factory=dict)
