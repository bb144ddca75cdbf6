"""The contract between components and the model layer.

Components (simulators, judges, extraction, assistants) never talk to a provider directly: they call a
:class:`ModelClient`. The real implementation (litellm, the in-process local provider, scripted doubles, cache,
limits, retries, usage accounting) lives in :mod:`collab_harness.models.client`; this module only fixes the shapes so
that every component can be typed against it without importing anything heavy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

__all__ = [
    "ChatMessages",
    "Completion",
    "GenerationParams",
    "ModelClient",
    "StructuredResult",
    "Usage",
]

ChatMessages = Sequence[Mapping[str, str]]
T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters. Every field takes part in the cache key."""

    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    extra: tuple[tuple[str, Any], ...] = ()
    #: A JSON Schema the reply must match, as canonical JSON text (hashable, and stable in the cache key).
    #: Providers that can enforce it do: OpenAI ``json_schema``, vLLM guided decoding, llama.cpp's server, and the
    #: local provider through a constrained-decoding library. Set it with :meth:`with_schema`.
    json_schema: str | None = None

    def with_(self, **changes: Any) -> GenerationParams:
        from dataclasses import replace

        return replace(self, **changes)

    def with_schema(self, schema: type[BaseModel] | Mapping[str, Any] | None) -> GenerationParams:
        """These parameters asking for JSON that matches ``schema`` (a pydantic model or a JSON Schema dict)."""
        if schema is None:
            return self.with_(json_schema=None)
        if isinstance(schema, type):
            return self.with_(json_schema=_schema_text(schema))
        return self.with_(json_schema=json.dumps(dict(schema), sort_keys=True, separators=(",", ":")))

    def schema_dict(self) -> dict[str, Any] | None:
        """The JSON Schema as a dict, or None."""
        return json.loads(self.json_schema) if self.json_schema else None


@lru_cache(maxsize=256)
def _schema_text(schema: type[BaseModel]) -> str:
    # Generating a JSON Schema costs ~1 ms of CPU on the event loop; every structured call asks for it.
    return json.dumps(schema.model_json_schema(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None


@dataclass(frozen=True)
class Completion:
    """One generated reply."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    finish_reason: str | None = None
    latency_s: float = 0.0


@dataclass(frozen=True)
class StructuredResult(Generic[T]):
    """Outcome of a structured-output call: a validated value, or a typed failure the caller records."""

    value: T | None
    raw: str | None
    attempts: int
    error: str | None = None
    usage: Usage = field(default_factory=Usage)

    @property
    def ok(self) -> bool:
        return self.value is not None


@runtime_checkable
class ModelClient(Protocol):
    """What components may ask of the model layer."""

    async def complete(
        self,
        model: str,
        messages: ChatMessages,
        *,
        params: GenerationParams | None = None,
        sample_index: int = 0,
        component: str = "unknown",
    ) -> Completion:
        """Generate one reply. ``sample_index`` distinguishes repeated samples of the same request in the cache;
        ``component`` is who asked (for usage accounting and error messages)."""
        ...

    async def structured(
        self,
        model: str,
        messages: ChatMessages,
        schema: type[T],
        *,
        params: GenerationParams | None = None,
        sample_index: int = 0,
        component: str = "unknown",
        max_attempts: int = 3,
    ) -> StructuredResult[T]:
        """Ask for JSON matching ``schema``; validate; retry with the validation error fed back; never raise for
        malformed output (return a failed :class:`StructuredResult` instead)."""
        ...
